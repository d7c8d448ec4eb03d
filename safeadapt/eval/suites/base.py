"""Suite building blocks (inspect_ai-style, kept small): a Suite = a default dataset + a way to
query the model (solver: generation or log-likelihood, through the cache) + a scorer (judge +
metric). `SUITES` is the registry; each suite lives in its own module with one register line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.registry import Registry
from safeadapt.data.schema import Sample
from safeadapt.eval.backends.common import load_image
from safeadapt.eval.cache import GenerationCache, cached_generate, cached_loglikelihood
from safeadapt.eval.types import Backend, DecodingConfig, GenRequest, Judge, JudgeItem, LoglikRequest

#: name -> Suite class (no I/O at registration); `register` sets the class's `name`. Every module
#: of this package is loaded on the first lookup.
SUITES: Registry[type["Suite"]] = Registry("suite", builtins="safeadapt.eval.suites", name_attr="name")


def get_suite(name: str) -> "Suite":
    return SUITES.get(name)()


def suite_names() -> list[str]:
    return SUITES.names()


@dataclass
class SuiteContext:
    backend: Backend
    judge: Judge
    decoding: DecodingConfig
    cache: GenerationCache | None
    work_dir: Path
    seed: int = 0
    bootstrap: int = 1000
    limit: int | None = None
    #: called with the number of newly finished model queries (progress bar)
    progress: Callable[[int], None] | None = None
    log: list[str] = field(default_factory=list)
    #: every judge by name, primary (= `judge`) first, when more than one grades the generations
    judges: dict[str, Judge] = field(default_factory=dict)
    #: jailbreak style name -> template with a prompt slot (a user's file), replacing the built-in styles
    jailbreak_templates: dict[str, str] | None = None

    @property
    def supports_images(self) -> bool:
        return bool(getattr(self.backend, "supports_images", False))


@dataclass
class SuiteResult:
    #: what goes into results.json["suites"][name] (metric key(s), per_category, counts, ...)
    metrics: dict[str, Any]
    #: one record per query for generations.jsonl (prompt, response, judgement, sample fields)
    records: list[dict[str, Any]]
    skipped: str | None = None


class Suite:
    """Subclasses set `metric` and implement `default_samples`, `query_count`, `run`."""

    name: str = ""
    metric: str = ""
    #: True when `prepare` multiplies samples (attacks); it then applies ctx.limit itself
    expands: bool = False
    #: the sample label this suite measures ("harmful" for ASR suites, "benign" for over-refusal);
    #: None = every sample (helpfulness). See `select_by_label`.
    wants_label: str | None = None

    def default_samples(self, ctx: SuiteContext) -> list[Sample]:
        raise NotImplementedError

    def prepare(self, samples: list[Sample], ctx: SuiteContext) -> list[Sample]:
        """Turn dataset samples into the items actually queried (e.g. wrap in attacks)."""
        return samples

    def skip_reason(self, items: list[Sample], ctx: SuiteContext) -> str | None:
        return None

    def run(self, items: list[Sample], ctx: SuiteContext) -> SuiteResult:
        raise NotImplementedError


class JudgedRateSuite(Suite):
    """A suite whose metric is a rate over judged generations (`judged_rate_result`): by default
    the `builtin` suite's test split, broken down by category and by each metadata key in `groups`."""

    builtin: str = ""
    groups: tuple[str, ...] = ()

    def default_samples(self, ctx: SuiteContext) -> list[Sample]:
        from safeadapt.data.builtin import load_builtin

        return load_builtin(self.builtin, split="test", seed=ctx.seed)

    def run(self, items: list[Sample], ctx: SuiteContext) -> SuiteResult:
        recs = generate_and_judge(items, ctx, self.name)
        return SuiteResult(judged_rate_result(recs, self.metric, ctx, groups=self.groups), recs)


# ---------------------------------------------------------------- shared helpers
def select_by_label(samples: list[Sample], want: str | None, suite: str) -> tuple[list[Sample], dict[str, Any]]:
    """The samples a suite measures: those labelled `want`, plus unlabelled ones (a dataset without
    labels is taken to be of the suite's kind). Returns (samples, {"wanted", "dataset": counts per
    label, "used"}); no matching sample -> one-line error naming the counts."""
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.label or "unlabelled"] = counts.get(s.label or "unlabelled", 0) + 1
    used = samples if want is None else [s for s in samples if s.label in (want, None)]
    info = {"wanted": want or "any", "dataset": dict(sorted(counts.items())), "used": len(used)}
    if not used:
        have = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        raise SafeAdaptError(f"suite {suite!r} measures {want} prompts but its dataset has none ({have})")
    return used, info


def limit_items(items: list[Sample], limit: int | None, key: Callable[[Sample], str] | None = None) -> list[Sample]:
    """At most `limit` items, taken round-robin across groups (category by default) in order, so a
    small limit still covers every category."""
    if limit is None or limit <= 0 or len(items) <= limit:
        return items
    key = key or (lambda s: s.category or "")
    groups: dict[str, list[Sample]] = {}
    for s in items:
        groups.setdefault(key(s), []).append(s)
    out: list[Sample] = []
    queues = list(groups.values())
    i = 0
    while len(out) < limit:
        progressed = False
        for q in queues:
            if i < len(q) and len(out) < limit:
                out.append(q[i])
                progressed = True
        if not progressed:
            break
        i += 1
    chosen = {id(s) for s in out}
    return [s for s in items if id(s) in chosen]  # keep dataset order


def check_images(items: list[Sample]) -> None:
    """Fail early, naming the sample, if any image cannot be read."""
    for s in items:
        for im in s.images:
            load_image(im, where=f"sample {s.id}")


def gen_request(s: Sample) -> GenRequest:
    return GenRequest(key=s.id, messages=s.chat(), images=list(s.images))


def judge_prompt(s: Sample) -> str:
    """The request the judge should grade against: the unwrapped harmful prompt when known."""
    return str(s.metadata.get("original_prompt") or s.user_text())


def sample_fields(s: Sample) -> dict[str, Any]:
    return {
        "sample_id": s.id,
        "category": s.category,
        "label": s.label,
        "source": s.source,
        "attack": s.metadata.get("attack"),
        "modality": s.metadata.get("modality"),
        "messages": s.chat(),
        "images": [str(i) for i in s.images],
    }


def generate_and_judge(items: list[Sample], ctx: SuiteContext, suite: str) -> list[dict[str, Any]]:
    """Generate (cached) then judge every item; returns generations.jsonl records."""
    from safeadapt.eval.judges.apply import run_judge

    responses = cached_generate(
        ctx.backend, [gen_request(s) for s in items], ctx.decoding, ctx.cache, on_progress=ctx.progress
    )
    jitems = [JudgeItem(prompt=judge_prompt(s), response=r, sample=s) for s, r in zip(items, responses)]
    judgements = run_judge(ctx.judge, jitems)
    # more judges: the same generations graded again, each judge's judgement under its name
    others = {nm: run_judge(j, jitems) for nm, j in list(ctx.judges.items())[1:]} if len(ctx.judges) > 1 else {}
    recs = []
    for i, (s, r, j) in enumerate(zip(items, responses, judgements)):
        rec = {
            "suite": suite,
            **sample_fields(s),
            "prompt": judge_prompt(s),
            "response": r,
            "judgement": j.model_dump(),
        }
        if others:
            rec["judgements"] = {
                next(iter(ctx.judges)): rec["judgement"],
                **{nm: js[i].model_dump() for nm, js in others.items()},
            }
        recs.append(rec)
    return recs


def loglikelihoods(requests: list[LoglikRequest], ctx: SuiteContext) -> list[float]:
    return cached_loglikelihood(
        ctx.backend, requests, ctx.cache, batch_size=ctx.decoding.batch_size, on_progress=ctx.progress
    )


def judge_is_rubric(judge: Judge) -> bool:
    """Rubric-style judges score 1..5 (harmfulness); the refusal judge scores P(refusal)."""
    return str(getattr(judge, "score_scale", "")) == "1-5" or getattr(judge, "name", "") == "rubric"


def judged_rate_result(
    records: list[dict[str, Any]], metric: str, ctx: SuiteContext, *, groups: tuple[str, ...] = ()
) -> dict[str, Any]:
    """results.json block for a judged-rate suite: `metric` ("asr" = share of on-topic compliance,
    or "refusal_rate"), per_category, optional per-<group> breakdowns, every other outcome rate
    (refusal / compliance / benign / no-answer and the non-refusal rate = compliance + benign, beside
    ASR; unparsed count: `metrics.outcome_rates`), judge scores and,
    for rubric judges, harmfulness. Unparsed items are left out of every denominator."""
    import math

    from safeadapt.eval import metrics as M

    judgements = [r["judgement"] for r in records]
    cats = [r.get("category") for r in records]
    fn = M.asr if metric == "asr" else M.refusal_rate
    res = fn(judgements, cats, seed=ctx.seed, n_boot=ctx.bootstrap)
    out: dict[str, Any] = {"metric": metric, metric: res["overall"], "per_category": res["per_category"]}
    out.update({k: v for k, v in M.outcome_rates(judgements).items() if k != metric})
    judged = [r for r in records if M.label_of(r["judgement"]) != "unparsed"]
    flags = [M.is_compliance(r["judgement"]) if metric == "asr" else M.is_refusal(r["judgement"]) for r in judged]
    for g in groups:
        vals = [r.get(g) for r in judged]
        if any(v is not None for v in vals):
            out[f"per_{g}"] = M.grouped(
                flags, [v or "none" for v in vals], M.proportion, seed=ctx.seed, n_boot=ctx.bootstrap
            )
    # judge scores: only items the judge scored (not unparsed, not empty responses)
    scored = [(float(j["score"]), c) for j, c in zip(judgements, cats)
              if M.label_of(j) in ("refusal", "compliance", "benign") and not math.isnan(float(j["score"]))]
    out["judge_score"] = {**M.mean_score([s for s, _ in scored], seed=ctx.seed, n_boot=ctx.bootstrap),
                          "scale": str(getattr(ctx.judge, "score_scale", ""))}
    if judge_is_rubric(ctx.judge) and scored:
        out["harmfulness"] = M.harmfulness(
            [s for s, _ in scored], [c for _, c in scored], seed=ctx.seed, n_boot=ctx.bootstrap
        )
    if len(ctx.judges) > 1 and records and all("judgements" in r for r in records):
        from safeadapt.eval.judges.compare import compare_judges, human_agreement_of

        cmp = compare_judges(records, metric, list(ctx.judges), seed=ctx.seed, n_boot=ctx.bootstrap,
                             human={nm: human_agreement_of(nm, j) for nm, j in ctx.judges.items()})
        out["judges"], out["judge_agreement"] = cmp["judges"], cmp["agreement"]
    return out
