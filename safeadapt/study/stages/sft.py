"""Stage kind "sft": supervised fine-tuning via `safeadapt.train.sft.sft`. Model: input `model`
or params.model; rows: input `data` (a .jsonl/.json file, or a stage dir with `train.jsonl`) or
params.data; params.options are `SFTOptions`. Output: the trained HF dir in `out/model/`."""

from __future__ import annotations

from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import TrainStageParams, train_on_file


class SFTStageParams(TrainStageParams):
    options_model = "safeadapt.train.sft:SFTOptions"


@STAGE_KINDS.register("sft", params_model=SFTStageParams, version="1")
def sft_stage(ctx: StageContext) -> None:
    from safeadapt.train.sft import SFTOptions, sft

    train_on_file(ctx, SFTStageParams, SFTOptions, sft)
