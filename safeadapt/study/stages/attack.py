"""Stage kind "attack": fine-tuning attacks via `safeadapt.train.attack.attack` (harmful N-shot,
identity-shift AOA, benign Alpaca/Dolly recipes after Qi et al. 2023). Model: input `model` or
params.model; records: input `data` (a JSON/JSONL file, or a stage dir holding `data_file`) or
params.data; options unset in params.options take the recipe's paper defaults. Output: `out/model/`."""

from __future__ import annotations

from pydantic import field_validator

from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import TrainStageParams, data_file, model_ref


class AttackStageParams(TrainStageParams):
    """`TrainStageParams` (options are `SFTOptions`) plus the recipe and its knobs."""

    recipe: str
    n_examples: int | None = None
    system_prompt: str | None = None

    @field_validator("recipe")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            from safeadapt.train.attack import ATTACKS
        except ImportError:  # API not installed: checked when the stage runs
            return v
        if v not in ATTACKS:
            raise ValueError(f"unknown attack recipe {v!r}; known: {', '.join(ATTACKS.names())}")
        return v

    @field_validator("n_examples")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("must be positive")
        return v


@STAGE_KINDS.register("attack", params_model=AttackStageParams, version="1")
def attack_stage(ctx: StageContext) -> None:
    from safeadapt.train.attack import attack
    from safeadapt.train.sft import SFTOptions

    p = AttackStageParams.model_validate(ctx.params)
    path = data_file(ctx, "data", "data", p.data_file)
    # only explicitly set fields (the stage seed + the study's options): the rest keep the
    # recipe's paper defaults
    opts = SFTOptions.model_validate({"seed": ctx.seed, **p.options})
    if p.launch is not None:
        from safeadapt.study.stages._launch import LaunchSpec, launch_training

        assert path is not None
        job = {"kind": "attack", "recipe": p.recipe, "model": model_ref(ctx), "data": str(path.resolve()),
               "options": opts.model_dump(mode="json", exclude_unset=True), "n_examples": p.n_examples,
               "system_prompt": p.system_prompt}
        launch_training(ctx, LaunchSpec.model_validate(p.launch), job)
        return
    attack(
        model_ref(ctx), p.recipe, path, ctx.out / "model", opts, n_examples=p.n_examples, system_prompt=p.system_prompt
    )
