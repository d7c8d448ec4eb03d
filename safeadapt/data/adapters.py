"""Dataset adapters (Row -> Sample): the `ADAPTERS` registry, the `Context` an adapter sees, the
value helpers adapters share (labels, text, lists, images, ids) and the generic `table` adapter;
the named benchmark formats register from `benchmarks.py`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.registry import Registry
from safeadapt.data.readers import Row
from safeadapt.data.schema import Message, Sample

SAMPLE_FIELDS = ("id", "prompt", "messages", "images", "label", "category", "source", "reference", "choices")


class RowError(ValueError):
    """A malformed row; the loader prefixes the location (file:line)."""


@dataclass
class Context:
    """What an adapter may use: the file, the options, every row (for whole-file decisions)."""

    path: Path | None
    name: str
    opts: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()


Adapter = Callable[[Row, Context], Sample]
#: name -> `adapter(row, ctx) -> Sample`; the named benchmark formats (benchmarks.py) load on the first lookup
ADAPTERS: Registry[Adapter] = Registry("dataset adapter", builtins="safeadapt.data.benchmarks")


# ---------------------------------------------------------------------------------------------
# value helpers shared by adapters
_HARMFUL = {"harmful", "unsafe", "1", "true", "yes", "toxic", "bad"}
_BENIGN = {"benign", "safe", "0", "false", "no", "harmless", "ok"}


def normalize_label(value: Any, label_map: dict[str, str] | None = None) -> str | None:
    """harmful/unsafe/1/true -> "harmful"; benign/safe/0/false -> "benign"; empty -> None."""
    if value is None:
        return None
    v = str(value).strip()
    if not v:
        return None
    if label_map and v in label_map:
        v = label_map[v]
    low = v.lower()
    if low in _HARMFUL:
        return "harmful"
    if low in _BENIGN:
        return "benign"
    raise RowError(f"unknown label {v!r} (expected harmful/benign, unsafe/safe or 1/0; map others with label_map=)")


def _text(row: Row, column: str, *, required: bool = True) -> str | None:
    if column not in row.data:
        if required:
            raise RowError(f"missing column {column!r} (columns: {', '.join(k for k in row.data if k != '_key')})")
        return None
    v = row.data[column]
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise RowError(f"empty {column!r}")
        return None
    return str(v).strip() if not isinstance(v, str) else v.strip()


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                out = json.loads(s)
            except json.JSONDecodeError:
                raise RowError(f"{what}: not a JSON list: {s[:60]!r}") from None
            if isinstance(out, list):
                return out
        return [s]
    if hasattr(value, "tolist"):
        return list(value.tolist())
    raise RowError(f"{what}: expected a list, found {type(value).__name__}")


def _resolve_image(p: Any, ctx: Context) -> str:
    if not isinstance(p, (str, os.PathLike)):
        raise RowError(f"image entry must be a path, found {type(p).__name__}")
    path = Path(p)
    if not path.is_absolute():
        base = Path(ctx.opts["image_dir"]) if ctx.opts.get("image_dir") else ctx.base_dir
        path = base / path
    if ctx.opts.get("check_images", True) and not path.is_file():
        raise RowError(f"image file {path} not found")
    return str(path)


def _make_id(ctx: Context, row: Row, raw: Any = None) -> str:
    if raw is not None and str(raw).strip():
        return f"{ctx.name}:{str(raw).strip()}"
    return f"{ctx.name}:{row.index + 1}"


def prompt_column(ctx: Context) -> str:
    """The file's prompt column (`columns.find_column` over every row's columns: `prompt`, else
    the one common alias present), found once per file. No alias in a file without `messages`
    rows: a one-line error naming the file and its columns; ambiguous aliases likewise."""
    if "prompt_column" not in ctx.memo:
        from safeadapt.data.columns import PROMPT_COLUMNS, columns_of, find_column

        cols = columns_of(r.data for r in ctx.rows)
        chat = (ctx.opts.get("columns") or {}).get("messages", "messages") in cols
        source = str(ctx.path) if ctx.path is not None else ctx.name
        ctx.memo["prompt_column"] = (
            find_column(
                cols,
                PROMPT_COLUMNS,
                source=source,
                required=not chat,
                hint="rename it to 'prompt', or map it (columns: {prompt: NAME} in a dataset spec)",
            )
            or "prompt"
        )
    return str(ctx.memo["prompt_column"])


# ---------------------------------------------------------------------------------------------
# adapters: one small function each (Row -> Sample), no I/O beyond checking image files
@ADAPTERS.register("table")
def table_adapter(row: Row, ctx: Context) -> Sample:
    """Generic table row. `columns` maps Sample fields to column names (identity by default);
    unmapped columns go to metadata. Options: `label` (default label), `category`, `source`,
    `label_map`, `image_dir`, `check_images`."""
    cols: dict[str, str] = {f: f for f in SAMPLE_FIELDS}
    cols.update(ctx.opts.get("columns") or {})
    if "prompt" not in (ctx.opts.get("columns") or {}):
        cols["prompt"] = prompt_column(ctx)
    d = row.data
    messages = None
    prompt = None
    if cols["messages"] in d and d[cols["messages"]] not in (None, ""):
        raw = _as_list(d[cols["messages"]], "messages")
        try:
            messages = [Message(**m) if isinstance(m, dict) else Message(role="user", content=str(m)) for m in raw]
        except Exception as e:  # noqa: BLE001 - pydantic validation
            raise RowError(f"bad messages: {' '.join(str(e).split())[:160]}") from None
        if not messages:
            raise RowError("empty messages")
    else:
        prompt = _text(row, cols["prompt"])
    label = normalize_label(d.get(cols["label"]), ctx.opts.get("label_map")) if cols["label"] in d else None
    label = label or (normalize_label(ctx.opts["label"]) if ctx.opts.get("label") else None)
    images = [_resolve_image(p, ctx) for p in _as_list(d.get(cols["images"]), "images")]
    choices = _as_list(d.get(cols["choices"]), "choices") or None
    ref = d.get(cols["reference"])
    used = {cols[f] for f in SAMPLE_FIELDS}
    meta = {k: v for k, v in d.items() if k not in used and k != "_key"}
    category = d.get(cols["category"]) if cols["category"] in d else None
    return Sample(
        id=_make_id(ctx, row, d.get(cols["id"], d.get("_key"))),
        prompt=prompt, messages=messages, images=images, label=label,  # type: ignore[arg-type]
        category=(str(category).strip() or None) if category is not None else ctx.opts.get("category"),
        source=str(d.get(cols["source"]) or ctx.opts.get("source") or ctx.name),
        reference=None if ref is None or ref == "" else str(ref),
        choices=[str(c) for c in choices] if choices else None, metadata=meta,
    )
