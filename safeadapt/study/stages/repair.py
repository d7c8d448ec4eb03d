"""Stage kind "repair": a repair (antidote, set_difference, resta, somf, safemerge) via
`safeadapt.repair.api.repair`. The roles adapted / aligned / unaligned / safety come from input slots
of those names (or params of those names: paths / `input:<slot>/...`); params.method, parameters,
filters and calibration (dataset SPECs, `input:<slot>/file` resolved) complete the recipe.
Output: `out/model/` and `out/repair_recipe.json`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext, find_model
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import resolve_ref

ROLES = ("adapted", "aligned", "unaligned", "safety")


class RepairStageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str
    parameters: dict[str, Any] = {}
    filters: list[str] | None = None
    calibration: dict[str, Any] | None = None
    adapted: str | None = None
    aligned: str | None = None
    unaligned: str | None = None
    safety: str | None = None
    others: list[str] | None = None
    dtype: str = "float32"


def _model(ctx: StageContext, ref: str) -> str:
    if ref in ctx.inputs:
        return str(find_model(ctx.inputs[ref]))
    if ref.startswith("input:") and "/" not in ref:
        return str(find_model(ctx.input(ref[len("input:") :])))
    return resolve_ref(ctx, ref)


def build_recipe(ctx: StageContext) -> dict[str, Any]:
    """The repair recipe of this stage (see the module docstring)."""
    p = RepairStageParams.model_validate(ctx.params)
    rec: dict[str, Any] = {"repair_method": p.method, "parameters": dict(p.parameters), "dtype": p.dtype}
    for r in ROLES:
        ref = getattr(p, r)
        if ref is not None and r in ctx.inputs:
            raise SafeAdaptError(f"stage {ctx.name!r}: give {r} either as an input or as params.{r}, not both")
        if ref is not None:
            rec[r] = _model(ctx, ref)
        elif r in ctx.inputs:
            rec[r] = str(find_model(ctx.inputs[r]))
    if "adapted" not in rec:
        raise SafeAdaptError(f"stage {ctx.name!r} (repair) needs the adapted model: input 'adapted' or params.adapted")
    if p.others:
        rec["others"] = [_model(ctx, o) for o in p.others]
    if p.filters:
        rec["filters"] = list(p.filters)
    if p.calibration:
        rec["calibration"] = {k: resolve_ref(ctx, v) if isinstance(v, str) else v for k, v in p.calibration.items()}
    return rec


def repair_version(params: dict[str, Any], base_dir: Any = None) -> str:
    """The repair kind's cache version: "1", plus the calibration pass's version when the method
    scores weights on data (antidote wanda/reference, set_difference), so a change to the scores
    re-keys exactly the stages that use them and a cached repair is never reused across it."""
    from safeadapt.repair.calibrate.rows import CALIBRATION_VERSION
    from safeadapt.repair.methods.base import REPAIRS

    name = params.get("method")
    if not isinstance(name, str) or name not in REPAIRS.names():
        return "1"
    m = REPAIRS.get(name)
    try:
        needs = m.scores({**m.params, **dict(params.get("parameters") or {})})
    except (KeyError, TypeError, ValueError):  # bad parameters: validation reports them when the stage runs
        return "1"
    return f"1;calibration={CALIBRATION_VERSION}" if needs else "1"


@STAGE_KINDS.register("repair", params_model=RepairStageParams, version=repair_version)
def repair_stage(ctx: StageContext) -> None:
    from safeadapt.core.atomic import atomic_write_json
    from safeadapt.repair.api import repair

    rec = build_recipe(ctx)
    repair(rec, ctx.out / "model", seed=ctx.seed)
    atomic_write_json(ctx.out / "repair_recipe.json", rec)
