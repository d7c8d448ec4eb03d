"""Stage kind "build-llava": a LLaVA-1.5-style VLM (random-init projector) from an LLM (input
`model` or params.model) and a vision tower (input `vision_tower` or params.vision_tower; a hub id
such as openai/clip-vit-large-patch14-336 on a networked box), via `safeadapt.train.vl.build_llava`.
The two LLaVA stages then run as ordinary `sft` stages (which can launch multi-process)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext, find_model
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import model_ref, resolve_ref


class BuildLlavaParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    vision_tower: str | None = None
    build: dict[str, Any] = {}  # build_llava kwargs: projector_hidden_act, vision_feature_layer, image_seq_length


@STAGE_KINDS.register("build-llava", params_model=BuildLlavaParams, version="1")
def build_llava_stage(ctx: StageContext) -> None:
    from safeadapt.train.vl import build_llava

    p = BuildLlavaParams.model_validate(ctx.params)
    if "vision_tower" in ctx.inputs:
        tower = str(find_model(ctx.inputs["vision_tower"]))
    elif p.vision_tower:
        tower = resolve_ref(ctx, p.vision_tower)
    else:
        raise SafeAdaptError(
            f"stage {ctx.name!r} (build-llava) needs a vision tower: input 'vision_tower' or params.vision_tower"
        )
    build_llava(model_ref(ctx), tower, ctx.out / "model", seed=ctx.seed, overwrite=True, **p.build)
