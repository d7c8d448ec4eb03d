"""`evaluate(model, suites, out_dir, ...)`: load the model once, run each suite (generation and
log-likelihood through the on-disk cache, then judging), and write `results.json` (metrics with
Wilson intervals and counts, label counts of each dataset, provenance) and `generations.jsonl` (every prompt, response, judgement)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from safeadapt.core.atomic import atomic_write_json, atomic_write_text
from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import Timer, provenance
from safeadapt.core.runtime import make_progress
from safeadapt.data.schema import Sample
from safeadapt.eval.cache import GenerationCache
from safeadapt.eval.suites.base import SuiteContext, check_images, get_suite, limit_items, select_by_label, suite_names
from safeadapt.eval.types import Backend, DecodingConfig, Judge


def resolve_judge(judge: str | Judge, **kwargs: Any) -> Judge:
    """A judge object from a name + options (an LLM judge's backend is built from `model`,
    `backend`, `base_url`, ...: see `safeadapt.eval.judges.build`), or a judge object as is."""
    if isinstance(judge, str):
        from safeadapt.eval.judges.build import build_judge

        return build_judge(judge, **kwargs)
    if not hasattr(judge, "judge"):
        raise SafeAdaptError(f"judge must be a registered name or an object with .judge(items); got {type(judge).__name__}")
    return judge


def _judge_model(judge: Any) -> dict[str, Any] | None:
    """An LLM judge's model (ref, backend class, fingerprint) for provenance; None offline."""
    be = getattr(judge, "backend", None)
    if be is None:
        return None
    return {"ref": str(getattr(be, "ref", "")), "backend": type(be).__name__, "fingerprint": getattr(be, "fingerprint", None)}


def validate_suites(suites: list[str] | str) -> list[str]:
    names = [s.strip() for s in suites.split(",")] if isinstance(suites, str) else [str(s).strip() for s in suites]
    names = [n for n in names if n]
    if not names:
        raise SafeAdaptError(f"no suite given; known: {', '.join(suite_names())}")
    known = suite_names()
    for n in names:
        if n not in known:
            raise SafeAdaptError(f"unknown suite {n!r}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))


def _empty_metric() -> dict[str, Any]:
    return {"value": None, "ci_low": None, "ci_high": None, "n": 0, "k": 0}


def _query_count(suite_name: str, items: list[Sample]) -> int:
    return sum(len(s.choices) if (suite_name == "helpfulness" and s.choices) else 1 for s in items)


def evaluate(
    model: str | os.PathLike | Backend,
    suites: list[str] | str,
    out_dir: str | os.PathLike,
    *,
    judge: str | Judge = "refusal",
    datasets: dict[str, list[Sample]] | None = None,
    decoding: DecodingConfig | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
    limit: int | None = None,
    backend: str = "auto",
    backend_options: dict[str, Any] | None = None,
    judge_options: dict[str, Any] | None = None,
    cache_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run `suites` on `model` (a path / hub id / GGUF loaded with `backend`, or a Backend object)
    and write `out_dir/results.json` + `out_dir/generations.jsonl`. Returns the results dict.

    `datasets[suite]` overrides a suite's built-in samples. Generations are cached in
    `cache_path` (default `out_dir/cache/generations.jsonl`) keyed by (model fingerprint, sample
    id, prompt hash, decoding config), so a rerun or a resumed run skips finished work.
    `limit` caps items per suite (taken round-robin across categories)."""
    t_start = time.time()
    names = validate_suites(suites)
    datasets = dict(datasets or {})
    for k, v in datasets.items():
        if k not in names and k not in suite_names():
            raise SafeAdaptError(f"dataset override for unknown suite {k!r}; known: {', '.join(suite_names())}")
        if not v:
            raise SafeAdaptError(f"dataset for suite {k!r} is empty")
        if k in names:  # no sample of the suite's label -> one-line error before the model loads
            select_by_label(v, get_suite(k).wants_label, k)
        check_images(v)  # unreadable images fail before the model is loaded
    judge_obj = resolve_judge(judge, **(judge_options or {}))
    decoding = decoding or DecodingConfig(seed=seed)
    out = Path(out_dir)
    timer = Timer()

    with timer.section("load_model"):
        if isinstance(model, (str, os.PathLike)):
            from safeadapt.eval.backends import make_backend

            be: Backend = make_backend(str(model), backend, **(backend_options or {}))
            model_name = str(model)
        else:
            be = model
            model_name = str(getattr(model, "ref", type(model).__name__))
    out.mkdir(parents=True, exist_ok=True)  # only once the model loaded: an early failure leaves no dir
    cache = GenerationCache(Path(cache_path) if cache_path else out / "cache" / "generations.jsonl")

    results: dict[str, Any] = {"suites": {}}
    all_records: list[dict[str, Any]] = []
    with make_progress() as prog:
        for name in names:
            suite = get_suite(name)
            task = prog.add_task(name, total=None)
            ctx = SuiteContext(backend=be, judge=judge_obj, decoding=decoding, cache=cache, work_dir=out / "work" / name,
                               seed=seed, bootstrap=bootstrap, limit=limit, progress=lambda n, t=task: prog.advance(t, n))
            with timer.section(f"suite:{name}"):
                samples = datasets[name] if name in datasets else suite.default_samples(ctx)
                if not samples:
                    raise SafeAdaptError(f"dataset for suite {name!r} is empty")
                samples, label_info = select_by_label(samples, suite.wants_label, name)
                reason = suite.skip_reason(samples, ctx)
                if reason:
                    results["suites"][name] = {"metric": suite.metric, suite.metric: _empty_metric(), "per_category": {},
                                               "skipped": reason, "n_items": 0, "samples": label_info}
                    prog.update(task, total=0)
                    continue
                if not getattr(suite, "expands", False):
                    samples = limit_items(samples, limit)
                items = limit_items(suite.prepare(samples, ctx), limit)
                check_images(items)
                prog.update(task, total=_query_count(name, items))
                res = suite.run(items, ctx)
            block = {**res.metrics, "skipped": res.skipped, "n_items": len(items), "samples": label_info,
                     "timing_s": round(timer.timings[f"suite:{name}"], 3)}
            results["suites"][name] = block
            all_records.extend(res.records)

    config = {
        "model": model_name,
        "suites": names,
        "judge": getattr(judge_obj, "name", type(judge_obj).__name__),
        "judge_model": _judge_model(judge_obj),
        "decoding": decoding.model_dump(),
        "seed": seed,
        "bootstrap": bootstrap,
        "limit": limit,
        "backend": type(be).__name__,
        "threads": getattr(be, "threads", None),  # torch CPU threads in force (--threads auto resolves to a number)
        "dataset_overrides": {k: len(v) for k, v in datasets.items()},
    }
    results = {
        "model": model_name,
        "model_fingerprint": be.fingerprint,
        "judge": config["judge"],
        **results,
        "provenance": provenance(config=config, inputs={"model_fingerprint": be.fingerprint},
                                 timings={**timer.timings, "total": time.time() - t_start}),
    }
    atomic_write_text(out / "generations.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in all_records))
    atomic_write_json(out / "results.json", results)
    return results
