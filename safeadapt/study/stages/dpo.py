"""Stage kind "dpo": preference optimisation via `safeadapt.train.dpo.dpo`. Model: input `model`
or params.model; pairs ({"prompt", "chosen", "rejected", "images"?}): input `data` (file, or a
stage dir with `pairs.jsonl`) or params.data; params.options are `DPOOptions`. Output: `out/model/`."""

from __future__ import annotations

from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import TrainStageParams, train_on_file


class DPOStageParams(TrainStageParams):
    options_model = "safeadapt.train.dpo:DPOOptions"
    job_kind = "dpo"
    data_file: str = "pairs.jsonl"


@STAGE_KINDS.register("dpo", params_model=DPOStageParams, version="1")
def dpo_stage(ctx: StageContext) -> None:
    from safeadapt.train.dpo import DPOOptions, dpo

    train_on_file(ctx, DPOStageParams, DPOOptions, dpo)
