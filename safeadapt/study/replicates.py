"""Replication over seeds: `seeds: [0, 1, 2]` (or `--seeds 0,1,2`) expands a study once per seed
and merges the copies — a stage identical in every copy (same kind, params, stage seed and shared
inputs: nothing in it depends on the study seed) runs once; the others become `name@s<seed>`.
Also the across-seed statistics: mean and a 95% interval for every metric (`across_seeds`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.eval.metrics import wilson_ci

# two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964

INTERVAL_METHOD = (
    "95% interval of the across-seed mean: Student t over the per-seed values (mean +- t(0.975, n-1) * sd / "
    "sqrt(n)); for a fraction with counts, widened to at least the Wilson 95% interval of the counts pooled over "
    "seeds, so identical per-seed values (e.g. 0/144 on every seed) never give a zero-width interval"
)


def parse_seeds(seeds: Any, where: str = "") -> list[int]:
    """`seeds:` / `--seeds`: distinct integers, as a list or a comma-separated string ([] = none)."""
    if seeds is None:
        return []
    if isinstance(seeds, str):
        seeds = [x for x in seeds.replace(" ", "").split(",") if x]
    try:
        out = [int(x) for x in seeds]
    except (TypeError, ValueError):
        raise SafeAdaptError(f"{where}seeds must be integers, e.g. 0,1,2; got {seeds!r}") from None
    if len(set(out)) != len(out):
        raise SafeAdaptError(f"{where}seeds must be distinct, got {out}")
    return out


def merge_replicates(per_seed: dict[int, list[Any]]) -> list[Any]:
    """One stage list from the per-seed expansions (each in topological order): shared stages
    once (replicate None), the rest renamed `name@s<seed>` with `replicate` set and their inputs
    pointing at the right copy. `base_name` keeps the plain name (it names the output dir, so a
    replicate reuses a single-seed run's outputs of the same key)."""
    from dataclasses import replace

    from safeadapt.study.types import InputRef

    seeds = list(per_seed)
    by_seed = {sd: {s.name: s for s in stages} for sd, stages in per_seed.items()}
    shared: set[str] = set()
    for s in per_seed[seeds[0]]:
        copies = [by_seed[sd].get(s.name) for sd in seeds]
        if all(c is not None and _signature(c) == _signature(s) for c in copies) and all(
            u in shared for u in s.upstream
        ):
            shared.add(s.name)

    def rename(name: str, sd: int) -> str:
        return name if name in shared else f"{name}@s{sd}"

    out: list[Any] = [replace(s, base_name=s.name) for s in per_seed[seeds[0]] if s.name in shared]
    for sd in seeds:
        for s in per_seed[sd]:
            if s.name in shared:
                continue
            inputs = {k: InputRef(stage=rename(r.stage, sd)) if r.stage is not None else r for k, r in s.inputs.items()}
            out.append(replace(s, name=rename(s.name, sd), inputs=inputs, replicate=sd, base_name=s.name))
    return out


def _signature(s: Any) -> str:
    return json.dumps(
        [s.kind, s.params, s.seed, {k: r.to_json() for k, r in s.inputs.items()}], sort_keys=True, default=str
    )


# ------------------------------------------------------------------------------------ statistics


def t_quantile(df: int) -> float:
    """t_{0.975, df} (table to df 30, then the Cornish-Fisher expansion around the normal)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson score 95% interval of k successes in n (never zero width for n > 0); (0, 1) for n == 0."""
    return wilson_ci(k, n) if n > 0 else (0.0, 1.0)


def across(values: list[float], counts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Mean, sd and 95% interval of per-seed values (see INTERVAL_METHOD); `counts`: per-seed
    {k, n} when the values are fractions."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    out: dict[str, Any] = {"mean": mean, "sd": sd, "n_seeds": n, "values": list(values), "ci95": None}
    if n > 1 and sd is not None:
        half = t_quantile(n - 1) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
        if counts and all(isinstance(c, dict) and c.get("n") for c in counts):
            k, m = sum(c["k"] for c in counts), sum(c["n"] for c in counts)
            wl, wh = wilson(k, m)
            lo, hi = max(0.0, min(lo, wl)), min(1.0, max(hi, wh))
            out["pooled"] = {"k": k, "n": m}
        out["ci95"] = [lo, hi]
    return out


def across_seeds(
    per_seed: dict[int, dict[str, dict[str, Any]]], metrics: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """per_seed[seed][group][metric] (a number; `<metric>_count` = {k, n} when present) ->
    group -> metric -> `across(...)`, for the groups and metrics present on every seed."""
    seeds = list(per_seed)
    groups = [g for g in per_seed[seeds[0]] if all(g in per_seed[sd] for sd in seeds)]
    out: dict[str, Any] = {}
    for g in groups:
        names = metrics or tuple(k for k, v in per_seed[seeds[0]][g].items() if _is_num(v))
        row = {}
        for m in names:
            vals = [per_seed[sd][g].get(m) for sd in seeds]
            if all(_is_num(v) for v in vals):
                counts = [per_seed[sd][g].get(f"{m}_count") for sd in seeds]
                row[m] = across([float(v) for v in vals], counts if all(isinstance(c, dict) for c in counts) else None)
        out[g] = row
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ------------------------------------------------------------------------ any study's results.json


def stage_metrics(stage_dir: Path) -> dict[str, Any]:
    """Numeric metrics a stage wrote: `{"value": x}` leaves of its results.json / metrics.json
    (eval suites: `suites.<suite>.<metric>`, with `_count` {k, n} when present), and numbers
    under a top-level `metrics` mapping."""
    out: dict[str, Any] = {}
    for fname in ("results.json", "metrics.json"):
        f = stage_dir / fname
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text())
        except ValueError:
            continue

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict):
                if _is_num(node.get("value")):
                    out[path] = node["value"]
                    if _is_num(node.get("k")) and _is_num(node.get("n")):
                        out[f"{path}_count"] = {"k": node["k"], "n": node["n"]}
                    return
                for k, v in node.items():
                    walk(v, f"{path}.{k}" if path else str(k))

        walk(data.get("suites", {}), "")
        for k, v in (data.get("metrics") or {}).items() if isinstance(data.get("metrics"), dict) else []:
            if _is_num(v):
                out[k] = v
    return out


def write_results(study_dir: Path) -> dict[str, Any] | None:
    """DIR/results.json of a replicated study: per base stage, each seed's metrics and the
    across-seed mean and 95% interval of each. None when the study has no replicates."""
    from safeadapt.core.atomic import atomic_write_json
    from safeadapt.core.provenance import provenance

    rec = json.loads((study_dir / "study.json").read_text())
    seeds = rec.get("seeds") or []
    if len(seeds) < 2:
        return None
    per_seed: dict[int, dict[str, Any]] = {sd: {} for sd in seeds}
    for s in rec["stages"]:
        if s.get("replicate") is not None and s.get("status") in ("done", "cached"):
            m = stage_metrics(study_dir / s["dir"])
            if m:
                per_seed[s["replicate"]][s.get("base_name") or s["name"]] = m
    result = {
        "seeds": seeds,
        "per_seed": {str(sd): v for sd, v in per_seed.items()},
        "across_seeds": across_seeds(per_seed),
        "interval": INTERVAL_METHOD,
        "provenance": provenance(config={"study_dir": str(study_dir)}),
    }
    atomic_write_json(study_dir / "results.json", result)
    return result
