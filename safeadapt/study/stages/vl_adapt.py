"""Stage kind "vl-adapt": LLaVA-style adaptation via `safeadapt.train.vl`. Model: input `model` /
params.model (a VLM, or an LLM plus params.vision_tower, which first builds a LLaVA with
`build_llava`); rows: inputs/params `captions` (optional, stage 1: projector only) and `instruct`
(stage 2). Intermediate models live in ctx.scratch, so a killed run resumes after stage 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import (
    data_file,
    model_ref,
    move_into,
    read_json_rows,
    resolve_ref,
    validate_options,
)


class VLStageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    vision_tower: str | None = None
    build: dict[str, Any] = {}  # extra build_llava kwargs (projector_hidden_act, image_seq_length, ...)
    captions: str | None = None
    captions_file: str = "captions.jsonl"
    instruct: str | None = None
    instruct_file: str = "instruct.jsonl"
    stage1: dict[str, Any] = {}
    stage2: dict[str, Any] = {}

    @field_validator("stage1", "stage2")
    @classmethod
    def _opts(cls, v: dict[str, Any]) -> dict[str, Any]:
        return validate_options("safeadapt.train.sft:SFTOptions", v)


def _is_vlm(path: str) -> bool:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return "vision_config" in json.loads(cfg.read_text())
    except ValueError:
        return False


@STAGE_KINDS.register("vl-adapt", params_model=VLStageParams, version="1")
def vl_adapt_stage(ctx: StageContext) -> None:
    from safeadapt.train.sft import SFTOptions
    from safeadapt.train.vl import build_llava, stage_defaults, vl_adapt

    p = VLStageParams.model_validate(ctx.params)
    model = model_ref(ctx)
    tower_ref = p.vision_tower
    if "vision_tower" in ctx.inputs:
        from safeadapt.study.context import find_model

        tower_ref = str(find_model(ctx.inputs["vision_tower"]))
    elif tower_ref:
        tower_ref = resolve_ref(ctx, tower_ref)
    if tower_ref and not _is_vlm(model):
        built = ctx.scratch / "llava-init"
        if not (built / "config.json").exists():
            build_llava(model, tower_ref, built, seed=ctx.seed, overwrite=built.exists(), **p.build)
        model = str(built)
    cap = data_file(ctx, "captions", "captions", p.captions_file, required=False)
    ins = data_file(ctx, "instruct", "instruct", p.instruct_file)
    assert ins is not None
    # LLaVA-1.5 defaults per stage, updated with the study's options
    s1 = SFTOptions.model_validate({**stage_defaults(1).model_dump(), "seed": ctx.seed, **p.stage1})
    s2 = SFTOptions.model_validate({**stage_defaults(2).model_dump(), "seed": ctx.seed, **p.stage2})
    cap_rows = read_json_rows(cap) if cap is not None else []
    # train into scratch (stage 1 is kept at <dir>-stage1 and reused after a kill), then move
    work = ctx.scratch / "model"
    if work.exists():
        s2.overwrite = True  # a leftover final dir from an interrupted move: retrain stage 2
    vl_adapt(model, cap_rows, read_json_rows(ins), work, s1, s2, base_dir=ins.parent)
    move_into(work, ctx.out / "model")
