"""End of a search: the proxy front (unique candidates, non-dominated), its re-evaluation on the
full suites, how well the proxy ranked them (Spearman per objective, proxy-front points still on
the full front), the recipe beside each point with its one rebuild command, DIR/pareto.json,
DIR/summary.json and the printed front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from safeadapt.core.atomic import atomic_write_json, atomic_write_text
from safeadapt.core.provenance import provenance
from safeadapt.repair.search.methods import SEARCH_METHODS
from safeadapt.repair.search.pareto import front_indices, ranks, spearman
from safeadapt.repair.search.space import DIRECTIONS, OBJECTIVES, Space

DIRS = [DIRECTIONS[k] for k in OBJECTIVES]
ASR_DOC = {"mean": "mean of the measured ASR components (each attack surface weighs the same)",
           "max": "max of the measured ASR components (worst attack surface)"}


def asr_definition(spec: Any) -> str:
    text = ASR_DOC[spec.asr] + f" among {', '.join(spec.asr_components)}"
    if spec.attack_success == "non_refusal":
        text += "; an attack success is any non-refusal (compliance + benign), not only harmful compliance"
    return text


def constant_asr_warning(values: list[float], success: str) -> str | None:
    """A front whose ASR took one value in every evaluation ranks candidates by over-refusal and
    helpfulness alone: say so, since a user would read it as a safety ranking."""
    if len(values) < 2 or max(values) - min(values) > 1e-12:
        return None
    hint = (" The judge may not resolve harm on this model: compare the non-refusal rates, or search"
            " with objectives.attack_success: non_refusal." if success == "compliance" else "")
    return (f"ASR was {values[0]:.3f} in every evaluation ({len(values)}), so the front ranks candidates by "
            f"over-refusal and helpfulness alone, not by safety.{hint}")


def rho_text(rho: dict[str, float | None]) -> str:
    """Spearman proxy vs full per objective; n/a where it is undefined (under 3 re-evaluated points, or
    tied values)."""
    return ", ".join(f"{k} {v:.2f}" if v is not None else f"{k} n/a" for k, v in rho.items())


def _unique(trials: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for t in trials:
        seen.setdefault(t.user_attrs["result"]["key"], t)
    return list(seen.values())


def _rebuild(sp: Space, out: Path, method: str, params: dict[str, Any], key: str) -> dict[str, str]:
    entry = SEARCH_METHODS.get(sp.methods[method].entry)
    recipe = entry.recipe(sp.methods[method].spec, params, sp.models, sp.cfg.dtype)
    name = f"{method}-{key[:10]}"
    rel = f"recipes/{name}.yaml"
    atomic_write_text(out / rel, yaml.safe_dump(recipe, sort_keys=False))
    tok = sp.models[sp.cfg.tokenizer] if sp.cfg.tokenizer else None
    return {"recipe": rel, "command": entry.command(rel, f"models/{name}", seed=sp.seed, tokenizer=tok),
            "cwd": "the directory of this pareto.json"}


def finish(
    sp: Space, out: Path, study: Any, score: Any, frac: float, n_trials: int, con: Any, seconds: float
) -> dict[str, Any]:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    uniq = _unique(done)
    vals = [list(t.values) for t in uniq]
    front = front_indices(vals, DIRS)
    chosen = list(front)
    extra = sp.cfg.search.full_extra
    if extra:
        rk = ranks(vals, DIRS)
        rest = sorted((i for i in range(len(uniq)) if i not in front), key=lambda i: (rk[i], i))
        chosen += rest[:extra]
    full = []
    for n, i in enumerate(chosen, 1):
        t = uniq[i]
        r = t.user_attrs["result"]
        rec, ran = score(r["method"], r["params"], "full")
        full.append(rec)
        con.print(f"full evaluation {n}/{len(chosen)}: {r['method']}" + ("" if ran else " (cached)"))
    fvals = [[r["objectives"][k] for k in OBJECTIVES] for r in full]
    full_front = set(front_indices(fvals, DIRS))
    rho = {k: spearman([vals[i][j] for i in chosen], [fv[j] for fv in fvals]) for j, k in enumerate(OBJECTIVES)}
    points = []
    for pos, i in enumerate(chosen[: len(front)]):
        t = uniq[i]
        m, p = t.user_attrs["result"]["method"], t.user_attrs["result"]["params"]
        points.append({
            "trial": t.number, "method": m, "params": p,
            "objectives": dict(zip(OBJECTIVES, vals[i])),
            "objectives_full": {k: full[pos]["objectives"][k] for k in OBJECTIVES},
            "asr_components": full[pos]["objectives"]["asr_components"],
            "metrics": full[pos]["metrics"], "on_full_front": pos in full_front,
            "rebuild": _rebuild(sp, out, m, p, t.user_attrs["result"]["key"]),
        })
    points.sort(
        key=lambda x: (
            x["objectives_full"]["asr"],
            x["objectives_full"]["over_refusal"],
            -x["objectives_full"]["helpfulness"],
        )
    )
    atomic_write_json(out / "pareto.json", points)
    evals = list(score.cache)
    cost = {f: {"model_evaluations": sum(r["fidelity"] == f for r in evals),
                "items": sum(r["items"] for r in evals if r["fidelity"] == f)} for f in ("proxy", "full")}
    summary = {
        "trials": n_trials,
        "complete": len(done),
        "unique_candidates": len(uniq),
        "objectives": {k: DIRECTIONS[k] for k in OBJECTIVES},
        "asr_definition": asr_definition(sp.cfg.objectives),
        "proxy_frac": frac,
        "fidelity": {
            "proxy_front": len(front),
            "re_evaluated_full": len(chosen),
            "stay_on_full_front": sum(p["on_full_front"] for p in points),
            "spearman_proxy_vs_full": rho,
        },
        "cost": cost,
        "seconds": seconds,
        "sampler": sp.cfg.search.sampler,
        "provenance": provenance(config=sp.cfg.model_dump(mode="json"), inputs={"models": sp.models}),
    }
    warn = constant_asr_warning([v[0] for v in vals] + [fv[0] for fv in fvals], sp.cfg.objectives.attack_success)
    if warn:
        summary["warnings"] = [warn]
    atomic_write_json(out / "summary.json", summary)
    print_front(points, summary, con)
    return {**summary, "front": points}


def print_front(points: list[dict[str, Any]], summary: dict[str, Any], con: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"Pareto front ({len(points)} points, full suites; proxy values in brackets)")
    for c in ("method", "params", "asr", "over_refusal", "helpfulness", "full front"):
        t.add_column(c, overflow="fold")
    for p in points:
        o, f = p["objectives"], p["objectives_full"]
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p["params"].items())
        t.add_row(escape(p["method"]), escape(params), *[f"{f[k]:.3f} ({o[k]:.3f})" for k in OBJECTIVES],
                  "yes" if p["on_full_front"] else "no")
    con.print(t)
    for w in summary.get("warnings", []):
        con.print(f"[yellow]warning:[/] {escape(w)}")
    fid = summary["fidelity"]
    rho = rho_text(fid["spearman_proxy_vs_full"])
    con.print(
        f"proxy vs full: {fid['stay_on_full_front']}/{fid['proxy_front']} proxy-front points stay on the full front; "
        f"Spearman {rho}; evaluations: {summary['cost']['proxy']['model_evaluations']} proxy, "
        f"{summary['cost']['full']['model_evaluations']} full"
    )
