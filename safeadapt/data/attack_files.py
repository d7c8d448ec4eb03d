"""Jailbreak templates from a user's file (JSON, JSONL, YAML; CSV one a row), one attack style each, in the shapes
public DAN-style collections use: a list of strings, a list of {name/style, template/prompt/text},
or a mapping name -> template. Each template needs a `{prompt}` or `[INSERT PROMPT HERE]` slot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from safeadapt.core.errors import SafeAdaptError

#: the slots a template may carry; the request replaces each literally (no str.format)
SLOTS = ("{prompt}", "[INSERT PROMPT HERE]")
NAME_KEYS = ("name", "style", "id", "title", "act")
TEXT_KEYS = ("template", "prompt", "text", "jailbreak", "content")


def fill_template(template: str, prompt: str) -> str:
    """`template` with every slot replaced by `prompt`, literally: other braces (common in DAN
    texts) and braces inside the prompt stay as they are."""
    out = template
    for slot in SLOTS:
        out = out.replace(slot, prompt)
    return out


def check_templates(templates: Mapping[str, str], source: str) -> dict[str, str]:
    """name -> template, each checked for a slot (one-line error naming the source and the style)."""
    if not templates:
        raise SafeAdaptError(f"{source}: no jailbreak templates")
    out: dict[str, str] = {}
    for name, t in templates.items():
        if not isinstance(t, str) or not t.strip():
            raise SafeAdaptError(f"{source}: template {name!r} is not a non-empty string")
        if not any(slot in t for slot in SLOTS):
            raise SafeAdaptError(f"{source}: template {name!r} has no {SLOTS[0]} or {SLOTS[1]} slot "
                                 f"(starts {' '.join(t.split())[:60]!r})")
        out[str(name)] = t
    return out


def _entry(item: Any, i: int, source: str, stem: str) -> tuple[str, Any]:
    if isinstance(item, str):
        return f"{stem}-{i + 1}", item
    if isinstance(item, Mapping):
        text_key = next((k for k in TEXT_KEYS if k in item), None)
        if text_key is None:
            raise SafeAdaptError(f"{source}: entry {i + 1} has no template field (one of {', '.join(TEXT_KEYS)}); "
                                 f"fields: {', '.join(map(str, item))}")
        name_key = next((k for k in NAME_KEYS if k in item and str(item[k]).strip()), None)
        return (str(item[name_key]).strip() if name_key else f"{stem}-{i + 1}"), item[text_key]
    raise SafeAdaptError(f"{source}: entry {i + 1} is a {type(item).__name__}, expected a string or a mapping")


def parse_templates(data: Any, source: str, stem: str = "template") -> dict[str, str]:
    """name -> template from parsed file content (see the module docstring); a mapping holding one
    list (`{"templates": [...]}`) is read as that list."""
    if isinstance(data, Mapping) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))
    pairs: list[tuple[str, Any]]
    if isinstance(data, list):
        pairs = [_entry(x, i, source, stem) for i, x in enumerate(data)]
    elif isinstance(data, Mapping):
        pairs = [(str(k), v if isinstance(v, str) else _entry(v, i, source, str(k))[1] if isinstance(v, Mapping) else v)
                 for i, (k, v) in enumerate(data.items())]
    else:
        raise SafeAdaptError(
            f"{source}: expected a list of templates or a mapping name -> template, found {type(data).__name__}"
        )
    out: dict[str, str] = {}
    for name, t in pairs:
        if name in out:
            raise SafeAdaptError(f"{source}: template name {name!r} appears twice")
        out[name] = t
    return check_templates(out, source)


def load_jailbreak_templates(path: str | os.PathLike) -> dict[str, str]:
    """name -> template from a .json / .jsonl / .yaml / .yml / .csv / .tsv file (one-line errors naming the file)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SafeAdaptError(f"jailbreak templates file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SafeAdaptError(f"{p}: not UTF-8 text") from None
    ext = p.suffix.lower()
    if ext in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SafeAdaptError(f"{p}: invalid YAML ({' '.join(str(e).split())[:160]})") from None
    elif ext == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SafeAdaptError(f"{p}:{e.lineno}: invalid JSON ({e.msg})") from None
    elif ext in (".jsonl", ".ndjson"):
        from safeadapt.core.jsonl import read_json_records

        data = [r for _, r in read_json_records(p)]
    elif ext in (".csv", ".tsv"):  # one template a row, in a template / prompt / text column
        from safeadapt.data.readers import read_file_rows

        rows = read_file_rows(p)
        bad = next((r for r in rows if "__error__" in r.data), None)
        if bad is not None:
            raise SafeAdaptError(f"{bad.where}: {bad.data['__error__']}")
        data = [r.data for r in rows]
    else:
        raise SafeAdaptError(
            f"{p}: unsupported templates file type {ext or '(none)'}; use .json, .jsonl, .yaml, .yml, .csv or .tsv"
        )
    return parse_templates(data, str(p), stem=p.stem)
