"""Agreement of the default three-way judge (`refusal`: refusal / compliance / benign / no_answer)
with labels written by reading (bench/data/harm_dev, rule in docs/judges.md), and its XSTest figures.

1. Harm, 2-way: the judge's `compliance` against the reading label `harmful`, per family, on the
   train split (the harm weights were fit there) and the held-out split (split by hash before any
   fit); beside it the old reading "every non-refusal is an attack success" (`three_way=False`).
2. XSTest, 2-way against the human `final_label` (refusal, full or partial, vs full compliance; a
   `benign` reply is a non-refusal): every completions_*.csv in --data/xstest and in --external DIR
   (upstream's gpt4 / llama2new / mistralguard files, not shipped), whole file and held-out 30%.
3. Speed: 1,000 replies judged on one thread.

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/harm_agreement.py [--data ../shared/data] [--dev bench/data/harm_dev]
       [--external DIR] [--json OUT.json]"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeadapt.eval.judges.agreement import cohen_kappa, load_xstest_completions, split_of, two_way  # noqa: E402
from safeadapt.eval.judges.harm_data import is_harmful, read_harm_dev  # noqa: E402
from safeadapt.eval.judges.refusal import RefusalJudge  # noqa: E402
from safeadapt.eval.metrics import wilson_ci  # noqa: E402
from safeadapt.eval.types import JudgeItem  # noqa: E402

HERE = Path(__file__).resolve().parent


def labels(judge: RefusalJudge, rows: list[dict]) -> list[str]:
    return [j.label for j in judge.judge([JudgeItem(prompt=r["prompt"], response=r["completion"]) for r in rows])]


def cell(human: list[bool], pred: list[bool]) -> dict:
    k = sum(a == b for a, b in zip(human, pred))
    lo, hi = wilson_ci(k, len(human))
    return {"n": len(human), "agreement": k / len(human), "wilson95": [lo, hi], "kappa": cohen_kappa(human, pred)}


def harm_family(path: str, data: str) -> dict:
    rows = read_harm_dev(path, data)
    three, two = labels(RefusalJudge(), rows), labels(RefusalJudge(three_way=False), rows)
    out: dict = {"family": rows[0]["family"], "splits": {}}
    for s in ("train", "heldout"):
        idx = [i for i, r in enumerate(rows) if r["split"] == s]
        h = [is_harmful(rows[i]["label"]) for i in idx]
        out["splits"][s] = {**cell(h, [three[i] == "compliance" for i in idx]),
                            "non_refusal_reading": cell(h, [two[i] == "compliance" for i in idx])["agreement"],
                            "labels": dict(Counter(rows[i]["label"] for i in idx)),
                            "confusion": dict(sorted(Counter(f"{rows[i]['label']}->{three[i]}" for i in idx).items()))}
    return out


def xstest_file(path: str) -> dict:
    rows = load_xstest_completions(path)
    pred = [lab == "refusal" for lab in labels(RefusalJudge(), rows)]
    human = [two_way(r["final_label"]) == "refusal" for r in rows]
    held = [i for i, r in enumerate(rows) if split_of(r["id"]) == "heldout"]
    return {"file": os.path.basename(path), "all": cell(human, pred),
            "heldout": cell([human[i] for i in held], [pred[i] for i in held])}


def speed(data: str, n: int = 1000) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to judge n XSTest replies on one thread; on a
    shared box the CPU time is what one free core would take."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for f in sorted(glob.glob(os.path.join(data, "xstest", "completions_*.csv"))):
        rows += load_xstest_completions(f)
    items = [JudgeItem(prompt=r["prompt"], response=r["completion"]) for r in (rows * (n // max(1, len(rows)) + 1))[:n]]
    judge = RefusalJudge()
    t0, c0 = time.perf_counter(), time.process_time()
    judge.judge(items)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--dev", default=str(HERE / "data" / "harm_dev"))
    ap.add_argument("--external", default=None, help="directory of more XSTest completions_*.csv (e.g. mistralguard)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    fams = [harm_family(f, args.data) for f in sorted(glob.glob(os.path.join(args.dev, "*.jsonl")))]
    print("harm, 2-way: judge `compliance` vs reading label `harmful` (train = weights fit there)")
    print(
        f"{'family':26s} {'split':8s} {'n':>4s} {'agree':>6s} {'wilson95':>13s} {'kappa':>6s} {'non-refusal':>11s}  "
        f"labels"
    )
    for r in fams:
        for s, c in r["splits"].items():
            lo, hi = c["wilson95"]
            print(f"{r['family']:26s} {s:8s} {c['n']:4d} {c['agreement']:6.3f} {lo:6.3f}-{hi:5.3f} {c['kappa']:6.3f} "
                  f"{c['non_refusal_reading']:11.3f}  {c['labels']}")
    print("\nheld-out confusion (reading label -> judge label)")
    for r in fams:
        print(f"{r['family']:26s} {r['splits']['heldout']['confusion']}")
    files = sorted(glob.glob(os.path.join(args.data, "xstest", "completions_*.csv")))
    files += sorted(glob.glob(os.path.join(args.external, "completions_*.csv"))) if args.external else []
    xs = [xstest_file(f) for f in files]
    print("\nXSTest, 2-way (refusal vs non-refusal) against the human final_label")
    print(f"{'file':34s} {'n':>4s} {'whole':>6s} {'wilson95':>13s} | {'n':>4s} {'held-out':>8s} {'wilson95':>13s}")
    for r in xs:
        a, h = r["all"], r["heldout"]
        print(f"{r['file']:34s} {a['n']:4d} {a['agreement']:6.3f} {a['wilson95'][0]:6.3f}-{a['wilson95'][1]:5.3f} | "
              f"{h['n']:4d} {h['agreement']:8.3f} {h['wilson95'][0]:6.3f}-{h['wilson95'][1]:5.3f}")
    secs, cpu = speed(args.data)
    print(f"\nspeed: 1000 replies judged in {secs:.2f} s wall, {cpu:.2f} s CPU, on one thread")
    if args.json:
        from safeadapt.core.atomic import atomic_write_json

        atomic_write_json(
            args.json, {"harm": fams, "xstest": xs, "seconds_per_1000": secs, "cpu_seconds_per_1000": cpu}
        )


if __name__ == "__main__":
    main()
