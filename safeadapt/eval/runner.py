"""`evaluate(model, suites, out_dir, ...)`: load the model once, run each suite (generation and
log-likelihood through the on-disk cache, then judging), and write `results.json` (metrics with
Wilson intervals and counts, label counts of each dataset, provenance) and `generations.jsonl` (every prompt, response,
judgement)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

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
        raise SafeAdaptError(
            f"judge must be a registered name or an object with .judge(items); got {type(judge).__name__}"
        )
    return judge


def _judge_model(judge: Any) -> dict[str, Any] | None:
    """An LLM judge's model (ref, backend class, fingerprint) for provenance; None offline."""
    be = getattr(judge, "backend", None)
    if be is None:
        return None
    return {"ref": str(getattr(be, "ref", "")), "backend": type(be).__name__,
            "fingerprint": getattr(be, "fingerprint", None)}


def judge_list(judge: str | Judge | Sequence[str | Judge]) -> list[str | Judge]:
    """`"a,b"`, a list of names / Judge objects, or one of either -> the list, order kept."""
    if isinstance(judge, str):
        return [x.strip() for x in judge.split(",") if x.strip()]
    if isinstance(judge, (list, tuple)):
        out: list[str | Judge] = []
        for x in judge:
            out.extend(judge_list(x) if isinstance(x, str) else [x])
        return out
    return [judge]


def resolve_judges(
    judge: str | Judge | Sequence[str | Judge], options: Mapping[str, Any] | None = None
) -> dict[str, Judge]:
    """Judges by name, the first (primary) first. With one judge `options` are its keyword
    arguments; with several, `options` maps a judge's name to its own (unknown names are an error)."""
    items = judge_list(judge)
    if not items:
        from safeadapt.eval.judges.registry import judge_names

        raise SafeAdaptError(f"no judge given; known: {', '.join(judge_names())}")
    opts = dict(options or {})
    if len(items) > 1:
        named = [x for x in items if isinstance(x, str)]
        stray = sorted(set(opts) - set(named))
        if stray:
            raise SafeAdaptError(f"with several judges, judge options map a judge name to its options; "
                                 f"{', '.join(map(repr, stray))} is not one of the judges ({', '.join(named)})")
    out: dict[str, Judge] = {}
    for x in items:
        kw = opts if len(items) == 1 else dict(opts.get(x, {})) if isinstance(x, str) else {}
        j = resolve_judge(x, **kw)
        nm = x if isinstance(x, str) else str(getattr(j, "name", type(j).__name__))
        if nm in out:
            raise SafeAdaptError(f"judge {nm!r} given twice")
        out[nm] = j
    return out


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
    judge: str | Judge | Sequence[str | Judge] = "refusal",
    datasets: dict[str, list[Sample]] | None = None,
    decoding: DecodingConfig | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
    limit: int | None = None,
    backend: str = "auto",
    backend_options: dict[str, Any] | None = None,
    judge_options: dict[str, Any] | None = None,
    cache_path: str | os.PathLike | None = None,
    jailbreak_templates: str | os.PathLike | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run `suites` on `model` (a path / hub id / GGUF loaded with `backend`, or a Backend object)
    and write `out_dir/results.json` + `out_dir/generations.jsonl`. Returns the results dict.

    `datasets[suite]` overrides a suite's built-in samples. Generations are cached in
    `cache_path` (default `out_dir/cache/generations.jsonl`) keyed by (model fingerprint, sample
    id, prompt hash, decoding config), so a rerun or a resumed run skips finished work.
    `limit` caps items per suite (taken round-robin across categories).

    `judge`: one judge, or several (`"a,b"` or a list): the same generations are graded by each;
    the first is primary (its numbers are the suite's headline fields), every judge's rate and the
    pairwise agreement / kappa go under the suite's `judges` and `judge_agreement`.
    `jailbreak_templates`: a templates file (`load_jailbreak_templates`) or name -> template; the
    jailbreak suite then uses these styles instead of the built-in ones."""
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
    judges = resolve_judges(judge, judge_options)
    judge_obj = next(iter(judges.values()))
    templates, templates_info = None, None
    if jailbreak_templates is not None:
        from safeadapt.data.attack_files import check_templates, load_jailbreak_templates

        if isinstance(jailbreak_templates, Mapping):
            templates = check_templates(dict(jailbreak_templates), "jailbreak_templates")
            templates_info = {"styles": list(templates)}
        else:
            from safeadapt.core.provenance import sha256_file

            templates = load_jailbreak_templates(jailbreak_templates)
            templates_info = {"file": str(jailbreak_templates), "sha256": sha256_file(Path(jailbreak_templates)),
                              "styles": list(templates)}
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
            ctx = SuiteContext(
                backend=be,
                judge=judge_obj,
                decoding=decoding,
                cache=cache,
                work_dir=out / "work" / name,
                seed=seed,
                bootstrap=bootstrap,
                limit=limit,
                progress=lambda n, t=task: prog.advance(t, n),
                judges=judges if len(judges) > 1 else {},
                jailbreak_templates=templates,
            )
            with timer.section(f"suite:{name}"):
                samples = datasets[name] if name in datasets else suite.default_samples(ctx)
                if not samples:
                    raise SafeAdaptError(f"dataset for suite {name!r} is empty")
                samples, label_info = select_by_label(samples, suite.wants_label, name)
                reason = suite.skip_reason(samples, ctx)
                if reason:
                    results["suites"][name] = {
                        "metric": suite.metric,
                        suite.metric: _empty_metric(),
                        "per_category": {},
                        "skipped": reason,
                        "n_items": 0,
                        "samples": label_info,
                    }
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
        **({"judges": list(judges)} if len(judges) > 1 else {}),
        **({"jailbreak_templates": templates_info} if templates_info else {}),
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
        **({"judges": list(judges)} if len(judges) > 1 else {}),
        **results,
        "provenance": provenance(config=config, inputs={"model_fingerprint": be.fingerprint},
                                 timings={**timer.timings, "total": time.time() - t_start}),
    }
    atomic_write_text(out / "generations.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in all_records))
    atomic_write_json(out / "results.json", results)
    return results
