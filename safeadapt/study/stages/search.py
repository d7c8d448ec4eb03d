"""Stage kind "search": the Pareto search over repairs (`safeadapt.repair.search.search`). params:
`space` (a search space, docs/search.md; `input:<slot>` strings become the inputs' model paths /
stage dirs, `input:<slot>/file` a file inside one), `trials`, `proxy_frac`. The search runs in the stage's scratch dir
(its SQLite storage
and eval cache survive a kill, so a rerun resumes); pareto.json, summary.json, trials.jsonl and the
recipes are copied to `out/`."""

from __future__ import annotations

import shutil
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from safeadapt.study.context import StageContext, find_model
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import resolve_ref

OUTPUTS = ("pareto.json", "summary.json", "trials.jsonl")


def _inputs(ctx: StageContext, obj: Any) -> Any:
    """`input:<slot>` -> the slot's model path (or stage dir); `input:<slot>/file` -> that file."""
    if isinstance(obj, str) and obj.startswith("input:"):
        return resolve_ref(ctx, obj) if "/" in obj else str(find_model(ctx.input(obj[len("input:"):])))
    if isinstance(obj, list):
        return [_inputs(ctx, x) for x in obj]
    if isinstance(obj, dict):
        return {k: _inputs(ctx, v) for k, v in obj.items()}
    return obj


class SearchStageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    space: dict[str, Any]
    trials: Optional[int] = None
    proxy_frac: Optional[float] = None


# 2: eval.limit counts the suite's own prompts, after its label filter (as `safeadapt eval` does)
@STAGE_KINDS.register("search", params_model=SearchStageParams, version="2")
def search_stage(ctx: StageContext) -> None:
    from safeadapt.repair.search import load_space, search

    p = SearchStageParams.model_validate(ctx.params)
    space = {"seed": ctx.seed, **_inputs(ctx, p.space)}
    sp = load_space(space, base_dir=ctx.base_dir)
    work = ctx.scratch / "search"
    search(sp, work, trials=p.trials, proxy_frac=p.proxy_frac)
    for name in OUTPUTS:
        shutil.copy2(work / name, ctx.out / name)
    shutil.copytree(work / "recipes", ctx.out / "recipes")

