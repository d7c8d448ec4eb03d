"""Out-of-sample check of the default judge's harm decision on the SmolLM2 recipe's own generations:
the test-only family bench/data/harm_test (labels written by reading, rule in docs/judges.md; never
used for fitting), against the judge's `compliance` (harm: compliance vs not).

Overlap with the judge's dev set (bench/data/harm_dev) is recomputed here for each row, by (prompt
source, row id) and completion: `exact` rows (the same completion) are excluded; `prefix` rows (the
same greedy generation cut at another length: the dev set used 64 / 96 new tokens, the recipe 48) are
reported apart, by the dev row's split, because the harm weights were fit on the dev train split.

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/harm_recipe_check.py [--data ../shared/data]
       [--test bench/data/harm_test] [--dev bench/data/harm_dev] [--json OUT.json]"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeadapt.eval.judges.agreement import cohen_kappa, load_family_rows  # noqa: E402
from safeadapt.eval.judges.harm_data import is_harmful, read_harm_dev  # noqa: E402
from safeadapt.eval.judges.refusal import RefusalJudge  # noqa: E402
from safeadapt.eval.metrics import wilson_ci  # noqa: E402
from safeadapt.eval.types import JudgeItem  # noqa: E402

HERE = Path(__file__).resolve().parent


def dev_overlap(rows: list[dict[str, Any]], dev_dir: str) -> list[str]:
    """Per test row: "exact", "prefix:<dev split>" (one completion starts with the other, same
    source and row id) or "none"."""
    dev: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in sorted(glob.glob(os.path.join(dev_dir, "*.jsonl"))):
        for d in load_family_rows(f):
            if "completion" in d:  # rows naming an XSTest completions file are other models' output
                dev.setdefault((str(d["source"]), str(d["row_id"])), []).append(d)
    out = []
    for r in rows:
        kind = "none"
        for d in dev.get((str(r["source"]), str(r["row_id"])), []):
            a, b = r["completion"].strip(), str(d["completion"]).strip()
            if a == b:
                kind = "exact"
                break
            if a.startswith(b) or b.startswith(a):
                kind = f"prefix:{d['split']}"
        out.append(kind)
    return out


def confusion(human: list[bool], pred: list[bool]) -> dict[str, Any]:
    """Harm, 2-way: agreement (Wilson 95%), kappa and the confusion counts."""
    n = len(human)
    k = sum(a == b for a, b in zip(human, pred))
    lo, hi = wilson_ci(k, n) if n else (float("nan"), float("nan"))
    pairs = list(zip(human, pred))
    return {"n": n, "agreement": k / n if n else float("nan"), "wilson95": [lo, hi], "kappa": cohen_kappa(human, pred),
            "tp": sum(a and b for a, b in pairs), "fn": sum(a and not b for a, b in pairs),
            "fp": sum(b and not a for a, b in pairs), "tn": sum(not a and not b for a, b in pairs)}


def check(test_dir: str, dev_dir: str, data: str) -> dict[str, Any]:
    rows = [r for f in sorted(glob.glob(os.path.join(test_dir, "*.jsonl"))) for r in read_harm_dev(f, data)]
    if any(r.get("split") != "test" for r in rows):
        sys.exit("error: a harm_test row is not split 'test'")
    judged = RefusalJudge().judge([JudgeItem(prompt=r["prompt"], response=r["completion"]) for r in rows])
    ov = dev_overlap(rows, dev_dir)
    keep = [i for i, o in enumerate(ov) if o != "exact"]
    human = {i: is_harmful(rows[i]["label"]) for i in keep}
    pred = {i: judged[i].label == "compliance" for i in keep}

    def cell(idx: list[int]) -> dict[str, Any]:
        return confusion([human[i] for i in idx], [pred[i] for i in idx])

    groups = {"all (exact overlaps excluded)": keep,
              "out of sample (no prefix of a dev train row)": [i for i in keep if ov[i] != "prefix:train"],
              "no dev counterpart": [i for i in keep if ov[i] == "none"],
              "prefix of a dev held-out row": [i for i in keep if ov[i] == "prefix:heldout"],
              "prefix of a dev train row": [i for i in keep if ov[i] == "prefix:train"]}
    by_stage = {st: [i for i in keep if rows[i]["stage"] == st] for st in dict.fromkeys(r["stage"] for r in rows)}
    misses = [{"stage": rows[i]["stage"], "row_id": rows[i]["row_id"], "overlap": ov[i], "label": rows[i]["label"],
               "judge": judged[i].label, "p_harm": judged[i].extra.get("harm"), "reason": rows[i]["reason"],
               "prompt": rows[i]["prompt"][:120], "completion": rows[i]["completion"][:160]}
              for i in keep if human[i] != pred[i]]
    return {"n_rows": len(rows), "overlap": dict(Counter(ov)), "labels": dict(Counter(r["label"] for r in rows)),
            "judge_labels": dict(Counter(j.label for j in judged)),
            "groups": {k: cell(v) for k, v in groups.items()}, "by_stage": {k: cell(v) for k, v in by_stage.items()},
            "misses": misses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--test", default=str(HERE / "data" / "harm_test"))
    ap.add_argument("--dev", default=str(HERE / "data" / "harm_dev"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = check(a.test, a.dev, a.data)
    print(f"{res['n_rows']} rows; overlap with the dev set: {res['overlap']}; reading labels {res['labels']}; "
          f"judge labels {res['judge_labels']}")
    print(f"\nharm, 2-way (judge compliance vs reading label harmful)\n{'rows':46s} {'n':>4s} {'agree':>6s} "
          f"{'wilson95':>13s} {'kappa':>6s}  tp fn fp tn")
    for name, c in [*res["groups"].items(), *((f"stage {k}", v) for k, v in res["by_stage"].items())]:
        print(f"{name:46s} {c['n']:4d} {c['agreement']:6.3f} {c['wilson95'][0]:6.3f}-{c['wilson95'][1]:5.3f} "
              f"{c['kappa']:6.3f}  {c['tp']:2d} {c['fn']:2d} {c['fp']:2d} {c['tn']:2d}")
    print("\nmisses (reading label -> judge label)")
    for m in res["misses"]:
        print(f"- {m['stage']} row {m['row_id']} [{m['overlap']}] {m['label']} -> {m['judge']} "
              f"(P(harm) {m['p_harm']}): {m['reason']}\n    {m['completion']!r}")
    if a.json:
        from safeadapt.core.atomic import atomic_write_json

        atomic_write_json(a.json, res)


if __name__ == "__main__":
    main()
