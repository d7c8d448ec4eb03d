"""Stage kind "merge": weight merging via `safeadapt.repair.merge.api.merge`. The mergekit-style
config is built from the input stages' model dirs: params.method, per-input weights/densities
(keyed by input slot), optional base (an input slot or a model ref) and global parameters; or a
full params.config whose `input:<slot>` strings are replaced by the inputs' model paths."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext, find_model
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import resolve_ref

METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "slerp", "breadcrumbs")


class MergeStageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str | None = None
    weights: dict[str, float] = {}
    densities: dict[str, float] = {}
    base: str | None = None
    models: list[str] | None = None  # input slots to merge, in order (default: every input but base)
    parameters: dict[str, Any] = {}
    dtype: str = "float32"
    tokenizer: str | None = None  # input slot (or ref) to copy the tokenizer/processor from
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "MergeStageParams":
        if self.config is None and self.method is None:
            raise ValueError("give 'method' (with weights/base) or a full mergekit-style 'config'")
        if self.config is not None and self.method is not None:
            raise ValueError("give either 'method' or 'config', not both")
        if self.method is not None and self.method not in METHODS:
            raise ValueError(f"unknown merge method {self.method!r}; known: {', '.join(METHODS)}")
        return self


def _ref(ctx: StageContext, name: str) -> str:
    """An input slot -> its model path; otherwise a path/hub reference."""
    if name in ctx.inputs:
        return str(find_model(ctx.inputs[name]))
    return resolve_ref(ctx, name)


def _substitute(ctx: StageContext, obj: Any) -> Any:
    if isinstance(obj, str) and obj.startswith("input:"):
        slot = obj[len("input:") :]
        return str(find_model(ctx.input(slot)))
    if isinstance(obj, list):
        return [_substitute(ctx, x) for x in obj]
    if isinstance(obj, dict):
        return {k: _substitute(ctx, v) for k, v in obj.items()}
    return obj


def build_config(ctx: StageContext) -> dict[str, Any]:
    """The mergekit-style config for this stage (see module docstring)."""
    p = MergeStageParams.model_validate(ctx.params)
    if p.config is not None:
        return _substitute(ctx, p.config)
    slots = p.models or [s for s in ctx.inputs if s != p.base]
    for s in slots:
        ctx.input(s)
    for name, table in (("weights", p.weights), ("densities", p.densities)):
        unknown = sorted(set(table) - set(slots))
        if unknown:
            raise SafeAdaptError(
                f"stage {ctx.name!r}: {name} name {', '.join(unknown)}, not merged inputs ({', '.join(slots)})"
            )
    if not slots:
        raise SafeAdaptError(f"stage {ctx.name!r}: no models to merge (inputs: {', '.join(ctx.inputs) or 'none'})")
    models = []
    for s in slots:
        params: dict[str, Any] = {"weight": float(p.weights.get(s, 1.0 / len(slots)))}
        if s in p.densities:
            params["density"] = float(p.densities[s])
        models.append({"model": str(find_model(ctx.inputs[s])), "parameters": params})
    cfg: dict[str, Any] = {"merge_method": p.method, "models": models, "dtype": p.dtype}
    if p.base:
        cfg["base_model"] = _ref(ctx, p.base)
    if p.parameters:
        cfg["parameters"] = dict(p.parameters)
    return cfg


@STAGE_KINDS.register("merge", params_model=MergeStageParams, version="1")
def merge_stage(ctx: StageContext) -> None:
    from safeadapt.core.atomic import atomic_write_json
    from safeadapt.repair.merge.api import merge

    cfg = build_config(ctx)
    tok = ctx.params.get("tokenizer")
    merge(cfg, ctx.out / "model", seed=ctx.seed, copy_tokenizer_from=_ref(ctx, tok) if tok else None)
    atomic_write_json(ctx.out / "merge_config.json", cfg)
