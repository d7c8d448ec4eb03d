"""Stage kinds "diagnose.weights", "diagnose.activations", "diagnose.recommend" (see
safeadapt.diagnose) and "diagnose.guided_merge": a linear merge of input `adapted` and input
`safety` with the per-layer weights an upstream recommend stage chose."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import resolve_ref


class WeightsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[str] | None = None
    spectra: bool = False
    spectra_k: int = 8
    spectra_budget_s: float = 120.0


@STAGE_KINDS.register("diagnose.weights", version="1", params_model=WeightsParams)
def weights_stage(ctx: StageContext) -> None:
    from safeadapt.diagnose.api import run_weights

    p = WeightsParams.model_validate(ctx.params)
    refs = [ctx.model_input(s) for s in ("a", "b", "c") if s in ctx.inputs or s != "c"]
    run_weights(
        refs, ctx.out, labels=p.labels, spectra=p.spectra, spectra_k=p.spectra_k, spectra_budget_s=p.spectra_budget_s
    )


class ActivationsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str]  # input slots, in order; the first is the reference (aligned) model
    harmful: str = "builtin:harmful"
    harmless: str = "builtin:lookalike"
    limit: int | None = None
    batch_size: int = 32
    ablate: bool = True
    ablate_n: int = 64
    judge: str = "refusal"
    plugins: list[str] = []  # modules to import first (e.g. one registering the judge)
    max_new_tokens: int = 48
    direction_layer: int | None = None


def _spec(ctx: StageContext, spec: str) -> str:
    head, sep, rest = spec.partition(":")
    if sep and head in ("samples", "builtin") and rest:
        return f"{head}:{resolve_ref(ctx, rest)}" if head == "samples" else spec
    return resolve_ref(ctx, spec)


@STAGE_KINDS.register("diagnose.activations", version="1", params_model=ActivationsParams)
def activations_stage(ctx: StageContext) -> None:
    from safeadapt.diagnose.api import run_activations
    from safeadapt.study.registry import import_plugin

    p = ActivationsParams.model_validate(ctx.params)
    for mod in p.plugins:
        import_plugin(mod, where=f"stage {ctx.name!r}: ")
    run_activations([ctx.model_input(s) for s in p.models], ctx.out, harmful=_spec(ctx, p.harmful),
                    harmless=_spec(ctx, p.harmless), limit=p.limit, labels=p.models, batch_size=p.batch_size,
                    ablate=p.ablate, ablate_n=p.ablate_n, judge=p.judge, max_new_tokens=p.max_new_tokens,
                    direction_layer=p.direction_layer, seed=ctx.seed)


class RecommendParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pair: str | None = None
    inside: float = 0.9
    outside: float = 0.25


@STAGE_KINDS.register("diagnose.recommend", version="1", params_model=RecommendParams)
def recommend_stage(ctx: StageContext) -> None:
    from safeadapt.diagnose.api import run_recommend

    p = RecommendParams.model_validate(ctx.params)
    run_recommend(
        ctx.input("weights"),
        ctx.out,
        activations_dir=ctx.inputs.get("activations"),
        pair=p.pair,
        adapted=ctx.model_input("adapted") if "adapted" in ctx.inputs else None,
        safety=ctx.model_input("safety") if "safety" in ctx.inputs else None,
        inside=p.inside,
        outside=p.outside,
    )


class GuidedMergeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokenizer: str | None = "adapted"  # input slot to copy the tokenizer / processor from
    dtype: str = "float32"
    weighting: str = "per_layer"  # per_layer: weights from the combined score; range: the recommended range only
    lo: float = 0.6  # per_layer: safety weight of the least-blamed layer ...
    hi: float = 0.9  # ... and of the most-blamed one
    outside: float = 0.75  # per_layer: safety weight of every non-layer tensor (embeddings, head, projector)


# version 2: per-layer safety weights from the combined score (weighting: per_layer)
@STAGE_KINDS.register("diagnose.guided_merge", version="2", params_model=GuidedMergeParams)
def guided_merge_stage(ctx: StageContext) -> None:
    from safeadapt.core.atomic import atomic_write_json
    from safeadapt.diagnose.recommend import guided_recipe, per_layer_recipe, per_layer_weights
    from safeadapt.repair.merge.api import merge

    p = GuidedMergeParams.model_validate(ctx.params)
    f = ctx.input("recommend") / "recommend.json"
    if not f.is_file():
        raise SafeAdaptError(
            f"stage {ctx.name!r}: {f} not found (input 'recommend' must be a diagnose.recommend stage)"
        )
    rec: dict[str, Any] = json.loads(f.read_text())
    lo, hi = rec["layers"]
    if p.weighting not in ("per_layer", "range"):
        raise SafeAdaptError(f"stage {ctx.name!r}: weighting must be per_layer or range, got {p.weighting!r}")
    extra: dict[str, Any] = {"layers": [lo, hi], "weighting": p.weighting}
    if p.weighting == "range":
        cfg = guided_recipe(ctx.model_input("adapted"), ctx.model_input("safety"), range(lo, hi + 1),
                            inside=rec["inside"], outside=rec["outside"], dtype=p.dtype)
    else:
        w = per_layer_weights({int(k): float(v) for k, v in rec["combined_score"].items()}, lo=p.lo, hi=p.hi)
        cfg = per_layer_recipe(
            ctx.model_input("adapted"), ctx.model_input("safety"), w, outside=p.outside, dtype=p.dtype
        )
        extra["safety_weight_per_layer"] = w
    tok = ctx.model_input(p.tokenizer) if p.tokenizer else None
    merge(cfg, ctx.out / "model", seed=ctx.seed, copy_tokenizer_from=tok)
    atomic_write_json(ctx.out / "merge_config.json", {**cfg, **extra})
