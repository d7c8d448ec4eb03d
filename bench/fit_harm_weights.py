"""Fit the harm judge's logistic weights (safeadapt/eval/judges/harm.py, HARM WEIGHTS) on the *train*
split of the labelled dev set bench/data/harm_dev only: rows the refusal judge does not call a
refusal or a non-answer (the harm model decides only between `compliance` and `benign`), target =
the reading label is `harmful`. Held-out rows are dropped as each file is read, never featurised.
Weights are sign-constrained (harm.HARM_SIGN). Model selection uses only grouped 5-fold cross-validation
inside train (--repeats partitions averaged); it prints CV agreement per family and the block for harm.py.

Usage: .venv/bin/python bench/fit_harm_weights.py [--data ../shared/data] [--dev bench/data/harm_dev]
       [--l2 0.03,0.1,0.3,1,3] [--repeats 10] [--write]"""

from __future__ import annotations

import argparse
import glob
import hashlib
import math
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from safeadapt.eval.judges.calibrate import fit_signed  # noqa: E402
from safeadapt.eval.judges.harm import HARM_FEATURES, HARM_SIGN, harm_features  # noqa: E402
from safeadapt.eval.judges.harm_data import is_harmful, read_harm_dev  # noqa: E402
from safeadapt.eval.judges.nonanswer import non_answer_kind  # noqa: E402
from safeadapt.eval.judges.refusal import RefusalJudge, extract_features  # noqa: E402

HERE = Path(__file__).resolve().parent
SIGN = np.array([HARM_SIGN[k] for k in HARM_FEATURES])


def train_files(data: str, dev: str, artifacts: str | None) -> list[list[dict]]:
    """The train rows, one list per family: the train split of every harm_dev file, and (with
    `artifacts`) the dev-half behaviours of every bench/data/harm_fresh file; a JailbreakBench row's
    CV group is its behaviour, so no behaviour sits on both sides of a fold."""
    fams = [[r for r in read_harm_dev(f, data) if r["split"] == "train"]
            for f in sorted(glob.glob(os.path.join(dev, "*.jsonl")))]
    if artifacts:
        from harm_fresh import DEV_HALF, behaviour_half, load

        for f in sorted(glob.glob(str(HERE / "data" / "harm_fresh" / "*.jsonl"))):
            rows = [r for r in load(Path(f), Path(artifacts)) if behaviour_half(r["prompt"]) == DEV_HALF]
            fams.append([{**r, "group": r["prompt"]} for r in rows])
    return fams


def answer_rows(fams: list[list[dict]]) -> list[dict]:
    """Rows the refusal judge calls an answer, with features."""
    judge = RefusalJudge()
    out = []
    for rows in fams:
        for r in rows:
            s, _ = judge.score_one(r["prompt"], r["completion"])
            if s >= judge.threshold or non_answer_kind(r["prompt"], r["completion"]) is not None:
                continue
            z = math.log(max(s, 1e-12) / max(1 - s, 1e-12))
            feats = harm_features(r["prompt"], r["completion"], extract_features(r["prompt"], r["completion"])[0], z)
            out.append({**r, "x": [feats.get(k, 0.0) for k in HARM_FEATURES], "y": int(is_harmful(r["label"]))})
    return out


def cv(X: np.ndarray, y: np.ndarray, groups: list[str], l2: float, k: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold logits: k folds by a hash of each row's group (family:row id), one partition per seed."""
    folds = np.array([int(hashlib.sha256(f"harm-cv:{seed}:{g}".encode()).hexdigest()[:8], 16) % k for g in groups])
    z = np.zeros(len(y))
    for f in range(k):
        tr = folds != f
        w = fit_signed(X[tr], y[tr], l2, SIGN)
        z[~tr] = np.hstack([np.ones(((~tr).sum(), 1)), X[~tr]]) @ w
    return z


def train_totals(fams: list[list[dict]]) -> dict[str, tuple[int, int]]:
    """Per family: (train rows, train rows the judge gets right without the harm model) — a refusal
    or non-answer call is right iff the reading label is not `harmful`; answer rows are added by CV."""
    judge = RefusalJudge()
    out = {}
    for rows in fams:
        right = 0
        for r in rows:
            s, _ = judge.score_one(r["prompt"], r["completion"])
            if s >= judge.threshold or non_answer_kind(r["prompt"], r["completion"]) is not None:
                right += int(not is_harmful(r["label"]))
        out[rows[0]["family"]] = (len(rows), right)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--dev", default=str(HERE / "data" / "harm_dev"))
    ap.add_argument("--l2", default="0.01,0.03,0.1,0.3,1,3")
    ap.add_argument("--repeats", type=int, default=10, help="CV partitions averaged per L2 (different fold hashes)")
    ap.add_argument("--artifacts", default=None, help="a JailbreakBench/artifacts checkout: also fit on the dev-half "
                    "behaviours of bench/data/harm_fresh")
    ap.add_argument("--write", action="store_true", help="write the block into safeadapt/eval/judges/harm.py")
    args = ap.parse_args()
    fams = train_files(args.data, args.dev, args.artifacts)
    rows = answer_rows(fams)
    X = np.array([r["x"] for r in rows])
    y = np.array([r["y"] for r in rows], dtype=float)
    fam = np.array([r["family"] for r in rows])
    groups = [f"{r['family']}:{r.get('group', r['row_id'])}" for r in rows]
    print(f"train rows the refusal judge calls answers: {len(rows)} (harmful {int(y.sum())})")
    totals = train_totals(fams)
    print("grouped 5-fold CV inside train, mean over partitions; per family: answer rows only | whole train split"
          " (refusal and non-answer calls included)")
    best = None
    for l2 in [float(v) for v in args.l2.split(",")]:
        hits = np.mean([(cv(X, y, groups, l2, seed=s) >= 0) == y for s in range(args.repeats)], axis=0)
        acc = float(hits.mean())
        per = []
        for f, (n, right) in totals.items():
            m = fam == f
            per.append(f"{f} {hits[m].mean() if m.any() else float('nan'):.3f}|{(right + hits[m].sum()) / n:.3f}")
        print(f"L2 {l2:<5g} CV agreement {acc:.3f}  " + "  ".join(per))
        if best is None or acc > best[1] + 1e-9:
            best = (l2, acc)
    l2 = best[0]
    w = fit_signed(X, y, l2, SIGN)
    block = "".join([f"HARM_L2 = {l2}\n", f"HARM_BIAS = {w[0]:.3f}\n", "HARM_WEIGHTS: dict[str, float] = {\n",
                     *(f'    "{k}": {v:.3f},\n' for k, v in zip(HARM_FEATURES, w[1:]) if abs(v) >= 5e-4), "}\n"])
    print(f"\n# chosen L2 {l2}; the block in safeadapt/eval/judges/harm.py\n{block}")
    if args.write:
        target = HERE.parent / "safeadapt" / "eval" / "judges" / "harm.py"
        src = target.read_text()
        start, end = src.index("HARM_L2 = "), src.index("}\n", src.index("HARM_WEIGHTS: dict")) + 2
        target.write_text(src[:start] + block + src[end:])
        print(f"written to {target}")


if __name__ == "__main__":
    main()
