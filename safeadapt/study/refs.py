"""Offline check of what a study will read, for `safeadapt run --dry-run`: every model, tower and
data reference in the stages' params is classified as a local path (exists), a hub id (validated
as a name only, never fetched), an upstream input, or a local path that is missing here (needed
at run time). A malformed hub id is a one-line error before anything runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.types import Study

_PATHLIKE = re.compile(r"^(?:\.{1,2}/|/|~)|\.(?:jsonl?|csv|tsv|txt|parquet|gguf|safetensors|ya?ml|png|jpe?g)$")
MODEL_KEYS = ("model", "vision_tower", "tokenizer", "base")
DATA_KEYS = ("data", "captions", "instruct", "image_dir")


@dataclass
class Ref:
    stage: str
    field: str
    ref: str
    status: str  # "local" | "hub id" | "input" | "missing"


def _hub_ok(name: str) -> str | None:
    """None when `name` is a valid hub repo id, else the reason."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError as e:
        return str(e).split(". Use")[0]
    return None


def classify(ref: str, base_dir: Path, *, model: bool) -> tuple[str, str | None]:
    """(status, error). `hf:` prefixes and path-less `org/name` strings are hub ids."""
    if ref.startswith("input:"):
        return "input", None
    if ref.startswith("hf:"):
        err = _hub_ok(ref[3:])
        return "hub id", err
    p = Path(ref).expanduser()
    if (p if p.is_absolute() else base_dir / p).exists():
        return "local", None
    if _PATHLIKE.search(ref):
        return "missing", None
    if model or ref.count("/") == 1:
        return "hub id", _hub_ok(ref)
    return "missing", None


def _dataset_loc(spec: Any) -> str | None:
    """The location inside an eval `datasets` spec (`adapter:loc`, `hf:org/name`, a dict)."""
    from safeadapt.data.adapters import ADAPTERS

    if isinstance(spec, dict):
        loc = spec.get("path") or spec.get("hub")
        return f"hf:{spec['hub']}" if spec.get("hub") and not spec.get("path") else (str(loc) if loc else None)
    s = str(spec)
    head, sep, rest = s.partition(":")
    if sep and head in ADAPTERS and rest:
        return rest
    return s


def _walk(params: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(field, ref, is_model) for the reference-bearing params of any stage kind."""
    for k in MODEL_KEYS:
        if isinstance(params.get(k), str) and params[k]:
            yield k, params[k], True
    for k in DATA_KEYS:
        if isinstance(params.get(k), str) and params[k]:
            yield k, params[k], False
    for i, src in enumerate(params.get("sources") or []):
        if isinstance(src, dict):
            for k in ("data", "image_dir"):
                if isinstance(src.get(k), str):
                    yield f"sources[{i}].{k}", src[k], False
    for suite, spec in (params.get("datasets") or {}).items():
        loc = _dataset_loc(spec)
        if loc:
            yield f"datasets.{suite}", loc, False


def check_refs(study: Study) -> list[Ref]:
    """Every reference in the study's params, classified; raises on a malformed hub id."""
    out: list[Ref] = []
    for st in study.stages:
        for fld, ref, is_model in _walk(st.params):
            if fld in ("base", "tokenizer") and ref in st.inputs:
                continue  # an input slot name (merge stages)
            status, err = classify(ref, study.base_dir, model=is_model)
            if err:
                raise SafeAdaptError(f"stage {st.name!r}: params.{fld}: {ref!r} is not a valid hub id: {err}")
            out.append(Ref(st.name, fld, ref, status))
    return out


def print_refs(refs: list[Ref], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not refs:
        return
    t = Table(title="references (hub ids validated as names only; nothing fetched)")
    for c in ("reference", "status", "used by"):
        t.add_column(c, overflow="fold")
    groups: dict[tuple[str, str], list[str]] = {}
    for r in refs:  # one row per distinct reference: the stages using it listed beside it
        groups.setdefault((r.ref, r.status), []).append(f"{r.stage}.{r.field}")
    for (ref, status), users in groups.items():
        st = {"missing": "[yellow]missing here (needed at run time)[/yellow]"}.get(status, status)
        shown = ", ".join(users[:3]) + (f" (+{len(users) - 3} more)" if len(users) > 3 else "")
        t.add_row(escape(ref), st, escape(shown))
    console.print(t)
