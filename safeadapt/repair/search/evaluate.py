"""How a search candidate is scored: build the repaired model through its method table entry,
evaluate it with `safeadapt.eval.runner.evaluate` (a plugin's eval kind, such as the miniature
world's, or a user's eval suites) on the full suites or on a stratified, seeded proxy subset, and reduce the
results to the five headline metrics (results.json names, with intervals) and the objectives."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Protocol

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import stable_hash
from safeadapt.data.schema import Sample
from safeadapt.repair.search.evals import SEARCH_EVALS
from safeadapt.report.collect import NON_REFUSAL_METRIC, SUITE_METRIC

# headline metric name -> (suite, metric key in results.json's suite block)
METRIC_SOURCES = {metric: (suite, key) for suite, (metric, key) in SUITE_METRIC.items()}
METRIC_SOURCES.update({metric: (suite, "non_refusal_rate") for suite, metric in NON_REFUSAL_METRIC.items()})
#: ASR component -> its non-refusal counterpart (objectives.attack_success: non_refusal)
NON_REFUSAL_OF = {SUITE_METRIC[suite][0]: metric for suite, metric in NON_REFUSAL_METRIC.items()}


class Evaluator(Protocol):
    """`ev(method, params, fidelity, work_dir) -> {"metrics": {...}, "items": int}`; `fidelity` is
    "proxy" or "full". `prepare()` runs once before any trial (load and check datasets)."""

    def prepare(self) -> None: ...

    def __call__(self, method: str, params: dict[str, Any], fidelity: str, work: Path) -> dict[str, Any]: ...


def resolve_spec(spec: str | dict[str, Any], base_dir: Path) -> str | dict[str, Any]:
    """A dataset spec with its relative path read against the space file's folder, as study stages
    read theirs (`map_spec_path`: a plain path, `adapter:path`, a dict's `path`). A path that does
    not exist there (a hub id, an absolute path) is left as given."""
    from safeadapt.data.loaders import map_spec_path

    def here(p: str) -> str:
        q = Path(p).expanduser()
        return str(base_dir / q) if not q.is_absolute() and (base_dir / q).exists() else p

    return map_spec_path(spec, here)


def stratified_subset(samples: list[Sample], frac: float, seed: int, salt: str = "") -> list[Sample]:
    """About `frac` of the samples from every stratum (category x modality x attack), at least one
    each, chosen by a seeded hash of the sample id; dataset order kept. frac >= 1: all samples."""
    if frac >= 1:
        return list(samples)
    strata: dict[tuple[str, str, str], list[int]] = {}
    for i, s in enumerate(samples):
        key = (s.category or "", str(s.metadata.get("modality") or ""), str(s.metadata.get("attack") or ""))
        strata.setdefault(key, []).append(i)
    chosen: set[int] = set()
    for idx in strata.values():
        k = max(1, round(frac * len(idx)))
        order = sorted(idx, key=lambda i: stable_hash([seed, salt, samples[i].id, i]))
        chosen.update(order[:k])
    return [s for i, s in enumerate(samples) if i in chosen]


def headline_metrics(results: dict[str, Any]) -> dict[str, Any]:
    """results.json -> {name: value, name_ci: [lo, hi], name_count: {k, n}} for each metric measured
    (a skipped suite, e.g. mm-safety on a text-only model, is left out)."""
    out: dict[str, Any] = {}
    for name, (suite, key) in METRIC_SOURCES.items():
        block = results.get("suites", {}).get(suite) or {}
        m = block.get(key)
        if block.get("skipped") or not isinstance(m, dict) or m.get("value") is None:
            continue
        out[name] = m["value"]
        out[f"{name}_ci"] = [m["ci_low"], m["ci_high"]]
        out[f"{name}_count"] = {"k": m["k"], "n": m["n"]}
    return out


def objectives(
    metrics: dict[str, Any], combine: str, components: list[str], success: str = "compliance"
) -> dict[str, Any]:
    """The three searched objectives. asr = mean (or max) of the measured ASR components; with
    `success` "non_refusal" each component is its non-refusal rate (compliance + benign)."""
    if success == "non_refusal":
        components = [NON_REFUSAL_OF[c] for c in components]
    have = [c for c in components if metrics.get(c) is not None]
    missing = [k for k in ("over_refusal", "helpfulness") if metrics.get(k) is None]
    if not have or missing:
        what = ", ".join(missing + ([] if have else ["any of " + "/".join(components)]))
        raise SafeAdaptError(f"the evaluation measured no {what}; add the suites that measure them to eval.suites")
    vals = [float(metrics[c]) for c in have]
    asr = max(vals) if combine == "max" else sum(vals) / len(vals)
    return {"asr": asr, "over_refusal": float(metrics["over_refusal"]), "helpfulness": float(metrics["helpfulness"]),
            "asr_components": have}


class ModelEvaluator:
    """Builds each candidate model and evaluates it; datasets are loaded once in `prepare`."""

    def __init__(self, space: Any, out: Path, proxy_frac: float) -> None:
        self.space, self.out, self.proxy_frac = space, Path(out), proxy_frac
        self.spec = space.cfg.eval
        self.full: dict[str, list[Sample]] = {}
        self.proxy: dict[str, list[Sample]] = {}
        self._backend: Callable[[str], Any] | None = None

    def prepare(self) -> None:
        from safeadapt.eval.runner import resolve_judge, resolve_judges, validate_suites
        from safeadapt.eval.suites.base import limit_items

        spec = self.spec
        suites = validate_suites(spec.suites)
        if spec.kind != "suites":
            kind = SEARCH_EVALS.get(spec.kind)
            data = self.space.base_dir / spec.data if not Path(spec.data).is_absolute() else Path(spec.data)
            self.full = {s: limit_items(items, spec.limit) for s, items in kind.load(data, suites).items()}
            self.judge: Any = resolve_judge(kind.judge)
        else:
            self.full = self._suite_samples(suites)
            self.judge = list(resolve_judges(spec.judge, spec.judge_options).values())  # the first is scored
        self.templates = None
        if spec.jailbreak_templates:
            from safeadapt.data.attack_files import load_jailbreak_templates

            q = Path(spec.jailbreak_templates).expanduser()
            self.templates = load_jailbreak_templates(q if q.is_absolute() else self.space.base_dir / q)
        for s, items in self.full.items():
            if not items:
                raise SafeAdaptError(f"eval: suite {s!r} has no samples")
            self.proxy[s] = stratified_subset(items, self.proxy_frac, self.space.seed, salt=s)
        self.decoding = self._decoding()

    def _suite_samples(self, suites: list[str]) -> dict[str, list[Sample]]:
        from safeadapt.data.loaders import load_samples
        from safeadapt.eval.suites.base import SuiteContext, get_suite, limit_items, select_by_label
        from safeadapt.eval.types import DecodingConfig

        unknown = sorted(set(self.spec.datasets) - set(suites))
        if unknown:
            raise SafeAdaptError(f"eval.datasets: {', '.join(unknown)} not in eval.suites")
        out = {}
        ctx = SuiteContext(backend=None, judge=None, decoding=DecodingConfig(), cache=None,  # type: ignore[arg-type]
                           work_dir=self.out / "work", seed=self.space.seed)
        for s in suites:
            spec = self.spec.datasets.get(s)
            if spec is not None:
                samples = list(load_samples(resolve_spec(spec, self.space.base_dir)))
            else:
                samples = get_suite(s).default_samples(ctx)
            # the suite's own prompts first (XSTest's safe ones for over-refusal), then the limit: the
            # items `safeadapt eval` with the same limit measures
            samples, _ = select_by_label(samples, get_suite(s).wants_label, s)
            out[s] = limit_items(samples, self.spec.limit)
        return out

    def _decoding(self) -> Any:
        from safeadapt.eval.types import DecodingConfig

        base = SEARCH_EVALS.get(self.spec.kind).decoding if self.spec.kind != "suites" else {}
        try:
            return DecodingConfig.model_validate({"seed": self.space.seed, **base, **self.spec.decoding})
        except Exception as e:  # pydantic's message, one line
            raise SafeAdaptError(f"eval.decoding: {' '.join(str(e).split())}") from None

    def backend(self, model_dir: Path) -> Any:
        own = SEARCH_EVALS.get(self.spec.kind).backend if self.spec.kind != "suites" else None
        if own is not None:
            return own(model_dir, self.decoding)
        from safeadapt.eval.backends import make_backend

        return make_backend(str(model_dir), self.spec.backend, **self.spec.backend_options)

    def __call__(self, method: str, params: dict[str, Any], fidelity: str, work: Path) -> dict[str, Any]:
        from safeadapt.eval.runner import evaluate
        from safeadapt.repair.search.methods import SEARCH_METHODS

        sp = self.space
        entry = SEARCH_METHODS.get(sp.methods[method].entry)
        recipe = entry.recipe(sp.methods[method].spec, params, sp.models, sp.cfg.dtype)
        tok = sp.models[sp.cfg.tokenizer] if sp.cfg.tokenizer else None
        model_dir = work / "model"
        entry.build(recipe, model_dir, seed=sp.seed, tokenizer=tok)
        try:
            be = self.backend(model_dir)
            data = self.proxy if fidelity == "proxy" else self.full
            res = evaluate(
                be,
                list(data),
                work / "eval",
                judge=self.judge,
                datasets=data,
                decoding=self.decoding,
                seed=sp.seed,
                bootstrap=self.spec.proxy_bootstrap if fidelity == "proxy" else self.spec.bootstrap,
                cache_path=self.out / "cache" / "generations.jsonl",
                jailbreak_templates=self.templates,
            )
        finally:
            if not sp.cfg.search.keep_models:
                shutil.rmtree(model_dir, ignore_errors=True)
        items = sum(int(b.get("n_items") or 0) for b in res["suites"].values())
        return {"metrics": headline_metrics(res), "items": items, "model_fingerprint": res.get("model_fingerprint")}
