"""Dataset loaders: local CSV / TSV / JSON / JSONL / TXT / parquet files with a column mapping,
Hugging Face `datasets` ids (online only), and named adapters for real safety-benchmark formats,
all producing `Sample`s via `load_samples(spec, **opts)`.

Spec strings: `"xstest:/path/xstest_prompts.csv"` picks adapter `xstest`; a plain path picks the
generic table reader by extension; `"hf:org/name"` (or an `adapter:org/name` whose path does not
exist) loads from the hub. Malformed rows raise `SafeAdaptError("file.jsonl:17: ...")`, or with
`on_error="skip"` are skipped, counted on the result (`.skipped`, `.errors`) and logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import ValidationError

from safeadapt.core.errors import SafeAdaptError
from safeadapt.data.adapters import ADAPTERS, SAMPLE_FIELDS, Context, RowError, normalize_label
from safeadapt.data.benchmarks import MMSB_QUESTION_KEY
from safeadapt.data.readers import Row, _hub_rows, read_file_rows

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
TABLE_EXTS = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".txt", ".parquet"}


class LoadedSamples(list):  # list[Sample] with the skip count attached
    """`list[Sample]` plus `skipped` (number of malformed rows dropped with on_error="skip") and
    `errors` (their one-line messages), and `source` (what was loaded)."""

    skipped: int = 0
    errors: list[str]
    source: str = ""


# row filters applied before conversion (a filtered row is not an error)
def _keep(row: Row, adapter: str, opts: dict[str, Any]) -> bool:
    if adapter == "sorry-bench" and opts.get("prompt_style"):
        return str(row.data.get("prompt_style") or "base") == opts["prompt_style"]
    return True


# ---------------------------------------------------------------------------------------------
def map_spec_path(spec: str | dict[str, Any], fn: Callable[[str], str]) -> str | dict[str, Any]:
    """`spec` with its local location passed through `fn` (to resolve a relative path): a dict's
    `path`, the location of `adapter:loc`, or a plain path; hub locations (`hf:...`, a dict's `hub`)
    are left as they are."""
    if isinstance(spec, dict):
        return {**spec, "path": fn(spec["path"])} if isinstance(spec.get("path"), str) else spec
    head, sep, rest = spec.partition(":")
    if sep and head in ADAPTERS and rest:
        return f"{head}:{fn(rest)}"
    return spec if sep and head == "hf" else fn(spec)


def _parse_spec(spec: str | os.PathLike | dict, opts: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """-> (adapter name, location, options)."""
    if isinstance(spec, dict):
        d = dict(spec)
        loc = d.pop("path", None) or d.pop("hub", None) or d.pop("data_files", None)
        if loc is None:
            raise SafeAdaptError(f"dataset spec {spec!r} has no 'path' (or 'hub')")
        adapter = d.pop("adapter", None) or d.pop("format", None)
        merged = {**d, **opts}
        if adapter:
            return adapter, str(loc), merged
        return _parse_spec(str(loc), merged)
    s = str(spec)
    if not s.strip():
        raise SafeAdaptError("empty dataset spec")
    head, sep, rest = s.partition(":")
    if sep and head in ADAPTERS and rest:
        return head, rest, dict(opts)
    if sep and head == "hf" and rest:
        return opts.pop("adapter", "table"), "hf:" + rest, dict(opts)
    return opts.pop("adapter", "table"), s, dict(opts)


KNOWN_OPTS = {"columns", "label", "category", "source", "label_map", "image_dir", "check_images", "on_error", "limit",
              "name", "split", "config", "revision", "with_images", "prompt", "variant", "scenario", "prompt_style"}


def _check_opts(adapter: str, o: dict[str, Any]) -> None:
    """Option errors are the user's, raised once before any row is read."""
    unknown = set(o) - KNOWN_OPTS
    if unknown:
        raise SafeAdaptError(f"unknown dataset option(s) {sorted(unknown)}; known: {', '.join(sorted(KNOWN_OPTS))}")
    if o.get("on_error", "raise") not in ("raise", "skip"):
        raise SafeAdaptError(f"on_error must be 'raise' or 'skip', not {o['on_error']!r}")
    cols = o.get("columns") or {}
    if not isinstance(cols, dict):
        raise SafeAdaptError(f"columns= must be a mapping of Sample field -> column name, not {type(cols).__name__}")
    bad = set(cols) - set(SAMPLE_FIELDS)
    if bad:
        raise SafeAdaptError(f"columns= names unknown Sample field(s) {sorted(bad)}; use {', '.join(SAMPLE_FIELDS)}")
    if o.get("label") is not None:
        try:
            normalize_label(o["label"])
        except RowError as e:
            raise SafeAdaptError(f"label= option: {e}") from None
    if adapter == "mm-safetybench" and o.get("variant", "TYPO") not in MMSB_QUESTION_KEY:
        raise SafeAdaptError(f"mm-safetybench: unknown variant {o['variant']!r}; use {', '.join(MMSB_QUESTION_KEY)}")
    if o.get("limit") is not None and (not str(o["limit"]).isdigit() or int(o["limit"]) < 1):
        raise SafeAdaptError(f"limit= must be a positive integer, not {o['limit']!r}")


def load_samples(spec: str | os.PathLike | dict, **opts: Any) -> LoadedSamples:
    """Load samples from a local file, a hub id or a named adapter; see the module docstring.

    Options: `columns` (Sample field -> column), `label` (default label), `category`, `source`,
    `label_map`, `image_dir`, `check_images` (default True), `on_error` ("raise" | "skip"),
    `limit`, `name` (id prefix; default the file stem), hub: `split`, `config`, `revision`;
    adapter-specific: figstep `with_images`/`prompt`, mm-safetybench `variant`/`scenario`,
    sorry-bench `prompt_style`."""
    adapter_name, loc, o = _parse_spec(spec, opts)
    adapter = ADAPTERS.get(adapter_name)
    _check_opts(adapter_name, o)
    on_error = o.get("on_error", "raise")
    path: Path | None = None
    if loc.startswith("hf:"):
        repo_id = loc[3:]
        rows = _hub_rows(repo_id, o)
        name = o.get("name") or repo_id.rsplit("/", 1)[-1]
    else:
        p = Path(loc).expanduser()
        if p.is_file():
            path = p
            rows = read_file_rows(p)
            name = o.get("name") or p.stem
        elif p.exists():
            raise SafeAdaptError(f"{p}: is a directory; pass a data file (csv, json, jsonl, txt, parquet)")
        elif p.suffix.lower() in TABLE_EXTS or loc.startswith((".", "/", "~")) or os.sep in loc and loc.count("/") != 1:
            raise SafeAdaptError(f"{p}: no such file")
        else:  # looks like a hub id "org/name"
            rows = _hub_rows(loc, o)
            name = o.get("name") or loc.rsplit("/", 1)[-1]
    where_src = str(path) if path else loc
    ctx = Context(path=path, name=name, opts=o, rows=rows)
    out = LoadedSamples()
    out.errors, out.source = [], where_src
    seen: dict[str, str] = {}
    limit = o.get("limit")
    for row in rows:
        if limit is not None and len(out) >= int(limit):
            break
        if not _keep(row, adapter_name, o):
            continue
        try:
            if "__error__" in row.data:
                raise RowError(row.data["__error__"])
            sample = adapter(row, ctx)
            if sample.id in seen:
                raise RowError(f"duplicate id {sample.id!r} (first at {seen[sample.id]})")
        except (RowError, ValidationError) as e:
            text = str(e) if isinstance(e, RowError) else "invalid sample: " + "; ".join(
                f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            msg = f"{row.where}: {text}"
            if on_error == "raise":
                raise SafeAdaptError(msg) from None
            out.errors.append(msg)
            continue
        seen[sample.id] = row.where
        out.append(sample)
    out.skipped = len(out.errors)
    if out.skipped:
        log.warning("%s: skipped %d malformed row(s); first: %s", where_src, out.skipped, out.errors[0])
    if not out:
        if out.skipped:
            raise SafeAdaptError(
                f"{where_src}: no valid samples; all {out.skipped} rows malformed (first: {out.errors[0]})"
            )
        raise SafeAdaptError(f"{where_src}: empty dataset (no rows)")
    return out
