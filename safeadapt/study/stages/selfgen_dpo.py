"""Stage kind "selfgen_dpo": Egida-style self-generated safety DPO. The model (input `model` or
params.model) answers the project's own harmful prompts (`safeadapt.data.builtin` train split,
never an evaluation benchmark) and benign prompts, batched through the eval backend with the
generation cache in ctx.scratch (a killed run resumes); the refusal judge keeps the harmful
completions it complied with as `rejected` against a project-written refusal, and the benign
answers it helped with as `chosen` against a refusal; then `train.dpo`. Output: `pairs.jsonl`,
`sft.jsonl` (benign own answers), `selfgen.json` (counts) and `model/` (unless train: false)."""

from __future__ import annotations

import gc
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import model_ref, validate_options

BENIGN_SUITES = ("lookalike", "helpfulness-qa")


class SelfGenParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    harmful_suite: Literal["harmful"] = "harmful"  # the project's own taxonomy, never a benchmark
    categories: list[str] | None = None  # harm categories to draw from (default: all 12)
    n_harmful: int | None = None  # prompts drawn (round-robin over categories); None = all
    benign_suites: list[str] = list(BENIGN_SUITES)
    n_benign: int | None = None
    split: Literal["train", "all"] = "train"  # builtin split; the eval suites measure "test"
    decoding: dict[str, Any] = {"max_new_tokens": 64, "batch_size": 32}
    judge: str = "refusal"
    judge_options: dict[str, Any] = {}
    backend: str = "auto"
    backend_options: dict[str, Any] = {}
    min_response_chars: int = 16
    min_pairs: int = 1
    train: bool = True
    options: dict[str, Any] = {}  # DPOOptions

    @field_validator("benign_suites")
    @classmethod
    def _benign(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in BENIGN_SUITES]
        if bad:
            raise ValueError(f"unknown benign suite {bad[0]!r}; known: {', '.join(BENIGN_SUITES)}")
        return v

    @field_validator("categories")
    @classmethod
    def _cats(cls, v: list[str] | None) -> list[str] | None:
        from safeadapt.data.builtin_safety import CATEGORIES

        bad = [c for c in v or [] if c not in CATEGORIES]
        if bad:
            raise ValueError(f"unknown harm category {bad[0]!r}; known: {', '.join(CATEGORIES)}")
        return v

    @field_validator("decoding")
    @classmethod
    def _dec(cls, v: dict[str, Any]) -> dict[str, Any]:
        return validate_options("safeadapt.eval.types:DecodingConfig", v)

    @field_validator("options")
    @classmethod
    def _opts(cls, v: dict[str, Any]) -> dict[str, Any]:
        return validate_options("safeadapt.train.dpo:DPOOptions", v)


def _prompts(p: SelfGenParams, seed: int) -> tuple[list[Any], list[Any]]:
    from safeadapt.data.builtin import load_builtin
    from safeadapt.train.selfgen import pick_prompts

    harmful = load_builtin(p.harmful_suite, split=p.split, seed=seed)  # type: ignore[arg-type]
    if p.categories:
        harmful = [s for s in harmful if s.category in p.categories]
    benign = [s for name in p.benign_suites for s in load_builtin(name, split=p.split, seed=seed)]  # type: ignore[arg-type]
    return pick_prompts(harmful, p.n_harmful, seed), pick_prompts(benign, p.n_benign, seed)


@STAGE_KINDS.register("selfgen_dpo", params_model=SelfGenParams, version="1")
def selfgen_dpo_stage(ctx: StageContext) -> None:
    from safeadapt.core.atomic import atomic_write_json, atomic_write_text
    from safeadapt.core.provenance import provenance
    from safeadapt.core.runtime import make_progress
    from safeadapt.eval.backends import make_backend
    from safeadapt.eval.cache import GenerationCache
    from safeadapt.eval.runner import resolve_judge
    from safeadapt.eval.types import DecodingConfig
    from safeadapt.train.dpo import DPOOptions, dpo
    from safeadapt.train.selfgen import build_selfgen_pairs

    p = SelfGenParams.model_validate(ctx.params)
    model = model_ref(ctx)
    harmful, benign = _prompts(p, ctx.seed)
    judge = resolve_judge(p.judge, **p.judge_options)
    decoding = DecodingConfig.model_validate({"seed": ctx.seed, **p.decoding})
    backend = make_backend(model, p.backend, **p.backend_options)
    with make_progress() as prog:
        task = prog.add_task(f"{ctx.name}: self-generation", total=len(harmful) + len(benign))
        data = build_selfgen_pairs(backend, judge, harmful, benign, decoding,
                                   cache=GenerationCache(ctx.scratch / "generations.jsonl"), seed=ctx.seed,
                                   min_response_chars=p.min_response_chars,
                                   on_progress=lambda n: prog.advance(task, n))
    del backend
    gc.collect()
    n_harm = data.stats["harmful"]["kept"]
    if n_harm < p.min_pairs:
        raise SafeAdaptError(
            f"stage {ctx.name!r}: only {n_harm} harmful completion(s) judged compliant out of "
            f"{len(harmful)} prompts (min_pairs {p.min_pairs}): the model already refuses; nothing to learn")
    atomic_write_text(ctx.out / "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in data.pairs))
    atomic_write_text(ctx.out / "sft.jsonl", "".join(json.dumps(r) + "\n" for r in data.sft))
    summary = {"model": model, "pairs": len(data.pairs), **data.stats,
               "provenance": provenance(config={"params": p.model_dump(mode="json"), "seed": ctx.seed})}
    atomic_write_json(ctx.out / "selfgen.json", summary)
    if p.train:
        opts = DPOOptions.model_validate({"seed": ctx.seed, **p.options})
        rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in data.pairs]
        dpo(model, rows, ctx.out / "model", opts, source=str(ctx.out / "pairs.jsonl"))
