"""Stage kind "eval": safety/helpfulness evaluation via `safeadapt.eval.runner.evaluate`. Model:
input `model` or params.model; params: suites, judge (a name or a list: several grade the same
generations; + judge_options), datasets (suite -> a `load_samples` spec; `input:<slot>/file` and
study-relative paths resolved), jailbreak_templates (a file, resolved the same way), decoding, bootstrap.
The generation cache lives in ctx.scratch (it survives a kill); results.json etc. land in `out/`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_serializer

from safeadapt.core.provenance import omit_none
from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.study.stages._common import model_ref, resolve_ref, validate_options


class EvalStageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    suites: list[str]
    judge: str | list[str] = "refusal"  # several: graded on the same generations, the first primary
    judge_options: dict[str, Any] = {}  # several judges: judge name -> its options
    datasets: dict[str, str | dict[str, Any]] = {}
    decoding: dict[str, Any] = {}
    bootstrap: int = 1000
    limit: int | None = None
    backend: str = "auto"  # vllm when installed and a GPU is present, else hf (see eval.backends)
    backend_options: dict[str, Any] = {}  # backend kwargs (dtype, threads, max_batch, ...)
    jailbreak_templates: str | None = None  # a templates file (study-relative or input:<slot>/file)

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # a field left at None is not written: studies written before it keep their cache keys
        return omit_none(handler(self), "jailbreak_templates")

    @field_validator("suites")
    @classmethod
    def _nonempty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one suite")
        return v

    @field_validator("decoding")
    @classmethod
    def _dec(cls, v: dict[str, Any]) -> dict[str, Any]:
        return validate_options("safeadapt.eval.types:DecodingConfig", v)


def _dataset_spec(ctx: StageContext, spec: str | dict[str, Any]) -> str | dict[str, Any]:
    """Resolve paths inside a loader spec (`map_spec_path`: `adapter:path`, a plain path or
    `input:<slot>/file`, a dict's 'path') against the study file's dir / the stage's inputs."""
    from safeadapt.data.loaders import map_spec_path

    return map_spec_path(spec, lambda p: resolve_ref(ctx, p))


def eval_version(params: dict[str, Any], base_dir: Any = None) -> str:
    """The eval kind's cache version: "1", plus each judge's declared `version` where it is not "1",
    so a stage graded by an older judge is re-graded (never reused) once that judge changes."""
    from safeadapt.eval.judges.registry import JUDGES
    from safeadapt.eval.runner import judge_list

    known = set(JUDGES.names())
    names = [n for n in judge_list(params.get("judge", "refusal")) if isinstance(n, str) and n in known]
    changed = [f"{n}={v}" for n in names if (v := str(getattr(JUDGES.get(n), "version", "1"))) != "1"]
    return "1" if not changed else "1;" + ",".join(changed)


@STAGE_KINDS.register("eval", params_model=EvalStageParams, version=eval_version)
def eval_stage(ctx: StageContext) -> None:
    from safeadapt.eval.runner import evaluate
    from safeadapt.eval.types import DecodingConfig

    p = EvalStageParams.model_validate(ctx.params)
    datasets = None
    if p.datasets:
        from safeadapt.data.loaders import load_samples

        datasets = {suite: load_samples(_dataset_spec(ctx, spec)) for suite, spec in p.datasets.items()}
    decoding = DecodingConfig.model_validate({"seed": ctx.seed, **p.decoding})
    templates = resolve_ref(ctx, p.jailbreak_templates) if p.jailbreak_templates else None
    evaluate(
        model_ref(ctx),
        list(p.suites),
        ctx.out,
        judge=p.judge,
        judge_options=p.judge_options or None,
        datasets=datasets,
        decoding=decoding,
        seed=ctx.seed,
        bootstrap=p.bootstrap,
        limit=p.limit,
        backend=p.backend,
        backend_options=p.backend_options or None,
        # the generation cache lives in scratch: it survives a kill, so a rerun resumes
        cache_path=ctx.scratch / "generations.jsonl",
        jailbreak_templates=templates,
    )
