"""Helpers shared by the built-in stage adapters: where a stage's model and data come from
(an input slot or a params reference), reading training rows, and moving results into `ctx.out`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext, find_model


def resolve_ref(ctx: StageContext, ref: str) -> str:
    """A params reference: `input:<slot>[/sub/path]` -> inside that input; an existing relative
    path -> against the study file's dir; anything else (e.g. a hub id) unchanged."""
    if ref.startswith("input:"):
        slot, _, rest = ref[len("input:") :].partition("/")
        base = ctx.input(slot)
        return str(base / rest) if rest else str(base)
    p = ctx.path(ref)
    if p.exists():
        return str(p)
    return ref


def model_ref(ctx: StageContext, slot: str = "model", param: str = "model") -> str:
    """The model to start from: input `slot` (a stage's model dir or a `{path: ...}`), else
    `params[param]` (a path or hub id). Exactly one must be given."""
    has_in = slot in ctx.inputs
    ref = ctx.params.get(param)
    if has_in and ref:
        raise SafeAdaptError(
            f"stage {ctx.name!r}: give the model either as input {slot!r} or as params.{param}, not both"
        )
    if has_in:
        return str(find_model(ctx.inputs[slot]))
    if ref:
        return resolve_ref(ctx, str(ref))
    raise SafeAdaptError(f"stage {ctx.name!r} ({ctx.kind}) needs a model: input {slot!r} or params.{param}")


def data_file(ctx: StageContext, slot: str, param: str, default_name: str, *, required: bool = True) -> Path | None:
    """A data file: `params[param]` (path / `input:slot/file`), else input `slot` (a file, or a
    stage dir holding `default_name`)."""
    ref = ctx.params.get(param)
    if ref:
        p = Path(resolve_ref(ctx, str(ref)))
    elif slot in ctx.inputs:
        p = ctx.inputs[slot]
        if p.is_dir():
            p = p / default_name
    elif required:
        raise SafeAdaptError(f"stage {ctx.name!r} ({ctx.kind}) needs data: input {slot!r} or params.{param}")
    else:
        return None
    if not p.is_file():
        raise SafeAdaptError(f"stage {ctx.name!r}: data file not found: {p}")
    return p


def read_json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows from `.jsonl` (one object a line) or `.json` (a list, or {"rows": [...]})."""
    from safeadapt.core.jsonl import read_json_records

    rows = [r for _, r in read_json_records(path)]
    if not all(isinstance(r, dict) for r in rows):
        raise SafeAdaptError(f"{path}: expected a list of JSON objects")
    if not rows:
        raise SafeAdaptError(f"{path}: no rows")
    return [_absolute_images(r, path.parent) for r in rows]


def _absolute_images(row: dict[str, Any], base: Path) -> dict[str, Any]:
    """Image paths in a row ('images': [...] / 'image') made absolute against the data file's dir,
    so rows from files in different folders can be mixed."""

    def fix(x: Any) -> Any:
        if isinstance(x, str) and not os.path.isabs(x) and (base / x).exists():
            return str(base / x)
        return x

    if isinstance(row.get("images"), list):
        row = {**row, "images": [fix(x) for x in row["images"]]}
    if "image" in row:
        row = {**row, "image": fix(row["image"])}
    return row


def move_into(src: Path, dst: Path) -> Path:
    """Move `src` (file or dir) to `dst` (same filesystem: a rename)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError:
        shutil.move(str(src), str(dst))
    return dst


def copy_contents(src: Path, dst: Path) -> None:
    """Copy every entry of dir `src` into existing dir `dst`."""
    for p in src.iterdir():
        if p.is_dir():
            shutil.copytree(p, dst / p.name, dirs_exist_ok=True)
        else:
            shutil.copy2(p, dst / p.name)


def validate_options(cls_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validate an options dict against `module:Class` (a pydantic model) when importable;
    returns the normalised dict. Raises ValueError (reported by pydantic) on bad options."""
    import importlib

    mod, _, name = cls_path.partition(":")
    try:
        cls = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError):
        return options  # API not installed: validated when the stage runs
    from pydantic import ValidationError

    try:
        return cls.model_validate(options).model_dump(mode="json", exclude_unset=True)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"{loc}: {err['msg']}") from None


class TrainStageParams(BaseModel):
    """Params of a stage that trains input `model` (or params.model) on one data file (input `data`,
    a file or a stage dir holding `data_file`, or params.data) with `options`, a dict validated
    against the subclass's `options_model` (`module:Class`)."""

    model_config = ConfigDict(extra="forbid")
    options_model: ClassVar[str] = "safeadapt.train.sft:SFTOptions"
    job_kind: ClassVar[str] = "sft"  # the launch_entry job kind when `launch` is given
    model: str | None = None
    data: str | None = None
    data_file: str = "train.jsonl"
    options: dict[str, Any] = {}
    launch: Any = None  # {config: accelerate.yaml, num_processes?, main_process_port?}: multi-process

    @field_validator("launch")
    @classmethod
    def _launch(cls, v: Any) -> Any:
        from safeadapt.study.stages._launch import LaunchSpec

        return None if v is None else LaunchSpec.model_validate(v).model_dump()

    @field_validator("options")
    @classmethod
    def _opts(cls, v: dict[str, Any]) -> dict[str, Any]:
        return validate_options(cls.options_model, v)


def train_on_file(ctx: StageContext, params_model: type[TrainStageParams], options_cls: type[BaseModel],
                  train: Callable[..., Any]) -> None:
    """The body of a `TrainStageParams` stage: `train(model, rows, out/model, options, base_dir=,
    source=)`, the stage seed under the study's options."""
    p = params_model.model_validate(ctx.params)
    path = data_file(ctx, "data", "data", p.data_file)
    assert path is not None
    opts = options_cls.model_validate({"seed": ctx.seed, **p.options})
    if p.launch is not None:
        from safeadapt.study.stages._launch import LaunchSpec, launch_training

        job = {"kind": p.job_kind, "model": model_ref(ctx), "data": str(path.resolve()),
               "options": opts.model_dump(mode="json", exclude_unset=True)}
        launch_training(ctx, LaunchSpec.model_validate(p.launch), job)
        return
    train(model_ref(ctx), read_json_rows(path), ctx.out / "model", opts, base_dir=path.parent, source=str(path))
