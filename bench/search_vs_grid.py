"""Pareto search vs the exhaustive grid over the same space, on the miniature world: wall time,
model evaluations (and items evaluated) of each, and the share of the grid front's hypervolume
the search's front reaches (both fronts measured on the full suites). Needs a demo study dir
(`safeadapt demo --out DIR`, or `safeadapt run ... --only vl_sft --only vl_s1 --only data`).

    .venv/bin/python bench/search_vs_grid.py --study runs/demo [--trials N] [--proxy-frac 0.25] [--limit 48]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SAFEADAPT_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OBJ = ("asr", "over_refusal", "helpfulness")
DIRS = ["minimize", "minimize", "maximize"]
W = {"low": 0.3, "high": 0.9, "step": 0.05}


def space(study: Path, limit: int | None) -> dict:
    st = {s["name"]: study / s["dir"] for s in json.loads((study / "study.json").read_text())["stages"]}
    gta = {"weight@safety": {"low": 0.5, "high": 0.9, "step": 0.1}, "weight@vl": {"one_minus": "weight@safety"},
           "density@vl": 0.7, "density@safety": {"choices": [0.5, 0.9]}}
    return {
        "seed": 0,
        "models": {
            "vl": str(st["vl"] / "model"),
            "safety": str(st["vl_sft"] / "model"),
            "base": str(st["vl_s1"] / "model"),
        },
        "tokenizer": "vl",
        "eval": {"kind": "world", "data": str(st["data"]), "limit": limit},
        "methods": {
            "linear": {
                "models": ["vl", "safety"],
                "params": {"weight@safety": W, "weight@vl": {"one_minus": "weight@safety"}},
            },
            "ties": {"base": "base", "models": ["vl", "safety"], "params": gta},
            "dare_linear": {"base": "base", "models": ["vl", "safety"], "params": gta},
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=None, help="default: 40%% of the grid")
    ap.add_argument("--proxy-frac", type=float, default=0.25)
    ap.add_argument("--limit", type=int, default=48, help="items per suite taken as the full suite (0: every item)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "search_vs_grid")
    args = ap.parse_args()

    from safeadapt.core.runtime import set_threads
    from safeadapt.repair.search import load_space, search
    from safeadapt.repair.search.engine import _Scorer
    from safeadapt.repair.search.evaluate import ModelEvaluator
    from safeadapt.repair.search.pareto import front_indices, hypervolume

    set_threads(1)
    sp = load_space(space(args.study, args.limit or None))
    grid = sp.grid()
    trials = args.trials or int(0.4 * len(grid))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    t0 = time.perf_counter()
    res = search(sp, args.work / "search", trials=trials, proxy_frac=args.proxy_frac, quiet=True)
    t_search = time.perf_counter() - t0

    t0 = time.perf_counter()
    gdir = args.work / "grid"
    gdir.mkdir()
    ev = ModelEvaluator(sp, gdir, 1.0)
    ev.prepare()
    score = _Scorer(sp, gdir, ev, 1.0)
    grid_recs = []
    for i, (m, p) in enumerate(grid, 1):
        rec, _ = score(m, p, "full")
        grid_recs.append(rec)
        print(f"grid {i}/{len(grid)} {m} {p}", flush=True)
    t_grid = time.perf_counter() - t0

    gvals = [[r["objectives"][k] for k in OBJ] for r in grid_recs]
    gfront = [gvals[i] for i in front_indices(gvals, DIRS)]
    gfront_keys = {
        json.dumps([grid_recs[i]["method"], grid_recs[i]["params"]], sort_keys=True) for i in front_indices(gvals, DIRS)
    }
    svals = [[p["objectives_full"][k] for k in OBJ] for p in res["front"]]
    found = sum(json.dumps([p["method"], p["params"]], sort_keys=True) in gfront_keys for p in res["front"])
    nadir = [max(v[0] for v in gfront) + 0.01, max(v[1] for v in gfront) + 0.01, min(v[2] for v in gfront) - 0.01]
    hv = {}
    for name, ref in (("ref_worst(1,1,0)", [1.0, 1.0, 0.0]), ("ref_grid_nadir", nadir)):
        hg, hs = hypervolume(gfront, DIRS, ref), hypervolume(svals, DIRS, ref)
        hv[name] = {"grid": hg, "search": hs, "share": hs / hg if hg else None, "ref": ref}
    grid_items = sum(r["items"] for r in grid_recs)
    cost = res["cost"]
    s_items = cost["proxy"]["items"] + cost["full"]["items"]
    out = {
        "grid_points": len(grid),
        "search_trials": trials,
        "proxy_frac": args.proxy_frac,
        "limit_per_suite": args.limit,
        "wall_s": {"search": t_search, "grid": t_grid, "ratio": t_search / t_grid},
        "model_evaluations": {
            "search_proxy": cost["proxy"]["model_evaluations"],
            "search_full": cost["full"]["model_evaluations"],
            "grid_full": len(grid),
        },
        "items": {"search": s_items, "grid": grid_items, "ratio": s_items / grid_items},
        "hypervolume": hv,
        "grid_front_size": len(gfront),
        "search_front_size": len(svals),
        "grid_front_points_found": found,
        "fidelity": res["fidelity"],
    }
    (args.work / "result.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
