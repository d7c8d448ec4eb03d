"""Stage kind "convert-data": public training sets in their own formats (LLaVA conversations,
VLGuard, PKU Safe-RLHF, SPA-VL; `safeadapt.data.train_formats`) turned into the rows the train
stages read, from local files or hub datasets (`hf:org/name`, online only). Several `sources` are
concatenated (an MTL mix) and shuffled with the stage seed. Output: `train.jsonl` (chat rows) or
`pairs.jsonl` (preference rows), images that came as bytes written under `images/`."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import resolve_ref


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    data: str  # a local file (json / jsonl / parquet / csv) or hf:org/name
    image_dir: str | None = None  # where relative image paths of the records live
    split: str = "train"
    config: str | None = None
    limit: int | None = None  # first N records (after the source's own order)

    @field_validator("format")
    @classmethod
    def _known(cls, v: str) -> str:
        from safeadapt.data.train_formats import TRAIN_FORMATS

        if v not in TRAIN_FORMATS:
            raise ValueError(f"unknown training data format {v!r}; known: {', '.join(TRAIN_FORMATS.names())}")
        return v


class ConvertParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[Source]
    shuffle: bool = True

    @field_validator("sources")
    @classmethod
    def _nonempty(cls, v: list[Source]) -> list[Source]:
        from safeadapt.data.train_formats import get_format

        if not v:
            raise ValueError("list at least one source")
        kinds = {get_format(s.format)[0] for s in v}
        if len(kinds) > 1:
            raise ValueError("sources mix chat (sft) and preference (dpo) formats")
        return v


def _records(ctx: StageContext, src: Source) -> list[tuple[str, dict[str, Any]]]:
    from safeadapt.data.readers import _hub_rows, read_file_rows

    ref = src.data
    if ref.startswith("hf:"):
        rows = _hub_rows(ref[3:], {"split": src.split, "config": src.config})
    else:
        path = Path(resolve_ref(ctx, ref))
        if not path.is_file():
            raise SafeAdaptError(f"stage {ctx.name!r}: data file not found: {path}")
        rows = read_file_rows(path)
    if src.limit is not None:
        rows = rows[: src.limit]
    return [(r.where, r.data) for r in rows]


def _image(ctx: StageContext, value: Any, image_dir: Path | None, n: int, where: str) -> str:
    """An image reference: an absolute path, or for bytes / PIL images a file written under
    out/images/ named relative to the rows file (the train stages resolve it against that file)."""
    if isinstance(value, str):
        p = Path(value)
        p = p if p.is_absolute() or image_dir is None else image_dir / p
        return str(p)
    if isinstance(value, dict) and value.get("path") and not value.get("bytes"):
        return _image(ctx, value["path"], image_dir, n, where)
    from PIL import Image

    img = Image.open(io.BytesIO(value["bytes"])) if isinstance(value, dict) and value.get("bytes") else value
    if not hasattr(img, "save"):
        raise SafeAdaptError(f"{where}: unsupported image value {type(value).__name__}")
    out = ctx.out / "images" / f"{n:07d}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(out)
    return f"images/{out.name}"  # relative to the rows file (ctx.out is renamed when the stage ends)


@STAGE_KINDS.register("convert-data", params_model=ConvertParams, version="1")
def convert_stage(ctx: StageContext) -> None:
    from safeadapt.core.atomic import atomic_write_json, atomic_write_text
    from safeadapt.data.train_formats import FormatError, get_format

    p = ConvertParams.model_validate(ctx.params)
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    kind = "sft"
    for src in p.sources:
        kind, conv = get_format(src.format)
        image_dir = Path(resolve_ref(ctx, src.image_dir)) if src.image_dir else None
        before = len(rows)
        for where, rec in _records(ctx, src):
            try:
                out = conv(rec)
            except FormatError as e:
                raise SafeAdaptError(f"{where}: {src.format}: {e}") from None
            for r in out:
                if r.get("images"):
                    r["images"] = [_image(ctx, im, image_dir, len(rows), where) for im in r["images"]]
                rows.append(r)
        counts[f"{src.format}:{src.data}"] = len(rows) - before
    if not rows:
        raise SafeAdaptError(f"stage {ctx.name!r}: the sources gave no rows")
    if p.shuffle:
        random.Random(ctx.seed).shuffle(rows)
    name = "train.jsonl" if kind == "sft" else "pairs.jsonl"
    atomic_write_text(ctx.out / name, "".join(json.dumps(r) + "\n" for r in rows))
    from safeadapt.core.provenance import provenance

    atomic_write_json(
        ctx.out / "convert.json",
        {
            "rows": len(rows),
            "kind": kind,
            "per_source": counts,
            "provenance": provenance(config={"params": p.model_dump(mode="json"), "seed": ctx.seed}),
        },
    )
