"""Parallel study scheduler benchmark: the full miniature-world demo (`safeadapt demo`, whatever
stages it has) run with `--jobs 1` and `--jobs 2` one after the other in one invocation, each into a
fresh directory. Prints the wall times, their ratio (target <= 0.65), the sum of stage times, the
load average around each run, which stages ran alongside others, and whether every metric of
results.json (values, counts, intervals, targets) is identical between the two runs.

    .venv/bin/python bench/demo_parallel.py [--out bench/_work/demo_parallel] [--order 1,2] [--quick]
    .venv/bin/python bench/demo_parallel.py --simulate RUN_DIR [--replicate 0]

`--simulate` measures nothing: it replays the per-stage seconds of a finished run (its study.json;
one seed of a multi-seed run) through the scheduler's rule (a stage starts when its inputs are
done and its slots are free, longest expected path first; a stage declared with `threads:` takes
several slots) with 1 and 2 workers and prints the predicted walls and ratio, ignoring worker
start-up and contention between the two workers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_demo(jobs: int, out: Path, quick: bool) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "safeadapt.cli", "demo", "--out", str(out), "--jobs", str(jobs)] + (
        ["--quick"] if quick else []
    )
    env = {k: v for k, v in os.environ.items() if k != "SAFEADAPT_JOBS"}
    env.update(
        SAFEADAPT_NO_PROGRESS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    )
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    (out.parent / f"jobs{jobs}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"demo --jobs {jobs} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    study = json.loads((out / "study.json").read_text())
    secs = [s["seconds"] for s in study["stages"] if isinstance(s.get("seconds"), (int, float))]
    return {
        "jobs": jobs,
        "wall_s": round(wall, 1),
        "stage_seconds_sum": round(sum(secs), 1),
        "stages": len(study["stages"]),
        "workers": study.get("jobs"),
        "threads_per_job": study.get("threads_per_job"),
        "ran_alongside_others": sum(bool(s.get("parallel_with")) for s in study["stages"]),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "results": json.loads((out / "results.json").read_text()),
    }


def metric_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Paths where the two results.json differ in models or targets (empty = identical)."""
    diffs: list[str] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                if k in ("model_dir", "stage"):  # paths differ by output dir, not numbers
                    continue
                walk(x.get(k), y.get(k), f"{path}.{k}")
        elif x != y:
            diffs.append(f"{path}: {x!r} != {y!r}")

    for key in ("models", "targets"):
        walk(a.get(key), b.get(key), key)
    return diffs


def simulate(study_dir: Path, replicate: int | None, jobs: int) -> float:
    """Predicted wall of the run's stages with `jobs` workers (list scheduling on measured seconds)."""
    import heapq

    rec = json.loads((study_dir / "study.json").read_text())
    stages = [s for s in rec["stages"] if replicate is None or s.get("replicate") in (None, replicate)]
    names = {s["name"] for s in stages}
    ups = {s["name"]: {i["stage"] for i in s["inputs"].values() if i.get("stage") in names} for s in stages}
    secs = {s["name"]: float(s.get("seconds") or 0.0) for s in stages}
    # the scheduler's own rule (its priority and its fit test), on stand-ins for the planned stages
    sys.path.insert(0, str(ROOT))
    from safeadapt.study.registry import import_plugin
    from safeadapt.study.scheduler import Scheduler, stage_slots

    for mod in rec.get("plugins") or ["safeadapt.world.stages"]:
        import_plugin(mod)
    items = {
        s["name"]: SimpleNamespace(
            stage=SimpleNamespace(
                name=s["name"], kind=s["kind"], upstream=sorted(ups[s["name"]]), threads=s.get("threads")
            ),
            status="to-run",
        )
        for s in stages
    }
    sched = Scheduler(plan=list(items.values()), jobs=jobs, keep_going=False, run=None, args=None,  # type: ignore[arg-type]
                      on_start=None, on_finish=None, on_skip=None, slots=lambda p: stage_slots(p.stage, 1, jobs))  # type: ignore[arg-type]
    order = sched._priority() if jobs > 1 else {n: (0, i) for i, n in enumerate(items)}
    done: set[str] = set()
    running: list[tuple[float, str]] = []
    pending = sorted(names, key=order.get)
    now = 0.0
    while pending or running:
        held = False
        for n in list(pending):
            if not ups[n] <= done:
                continue
            if not sched.fits(items[n], [items[m] for _, m in running]):
                held = True
            elif not held:
                heapq.heappush(running, (now + secs[n], n))
                pending.remove(n)
        now, n = heapq.heappop(running)
        done.add(n)
    return now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "_work" / "demo_parallel")
    ap.add_argument("--order", default="1,2", help="jobs values, run in this order")
    ap.add_argument("--quick", action="store_true", help="the demo's quick profile")
    ap.add_argument("--simulate", type=Path, help="predict from a finished run's stage times instead (see above)")
    ap.add_argument("--replicate", type=int, default=None, help="with --simulate: the seed of a multi-seed run")
    args = ap.parse_args()
    if args.simulate:
        w1, w2 = (simulate(args.simulate, args.replicate, j) for j in (1, 2))
        print(json.dumps({"predicted_wall_jobs1_s": round(w1, 1), "predicted_wall_jobs2_s": round(w2, 1),
                          "predicted_ratio": round(w2 / w1, 3)}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for j in [int(x) for x in args.order.split(",")]:
        runs[j] = run_demo(j, args.out / f"jobs{j}", args.quick)
        r = runs[j]
        print(
            f"--jobs {j}: wall {r['wall_s']} s, stage time sum {r['stage_seconds_sum']} s, {r['workers']} worker(s) x "
            f"{r['threads_per_job']} thread(s), {r['ran_alongside_others']}/{r['stages']} stages ran alongside "
            f"another, "
            f"load {r['load_before']} -> {r['load_after']}",
            flush=True,
        )
        partial = {k: {x: y for x, y in v.items() if x != "results"} for k, v in runs.items()}
        (args.out / "summary.json").write_text(json.dumps(partial, indent=2))  # kept if a later run is cut short
    summary: dict[str, Any] = {k: {x: y for x, y in v.items() if x != "results"} for k, v in runs.items()}
    if 1 in runs and 2 in runs:
        diffs = metric_diff(runs[1]["results"], runs[2]["results"])
        summary["ratio_jobs2_over_jobs1"] = round(runs[2]["wall_s"] / runs[1]["wall_s"], 3)
        summary["identical_metrics"] = not diffs
        summary["differences"] = diffs[:20]
        targets = runs[2]["results"].get("targets", {})
        summary["targets_hold"] = {k: v.get("holds") for k, v in targets.items()}
        print(f"ratio (jobs 2 / jobs 1): {summary['ratio_jobs2_over_jobs1']} (target <= 0.65); "
              f"results.json metrics identical: {not diffs}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
