"""Fit the offline `refusal` judge's logistic weights on the *dev* split only (XSTest completion files
plus, with --external, other models' XSTest files, plus the labelled out-of-family files in
bench/data/judge_families; held-out rows are dropped as each
file is read, never featurised or printed), choose the L2 penalty by grouped 5-fold
cross-validation inside dev (folds keyed by prompt id, repeated over 4 fold seeds), and print the
CV agreement per file (plus nested CV and cross-model transfer on dev) and the WEIGHTS block pasted into
safeadapt/eval/judges/refusal.py.

Usage: .venv/bin/python bench/fit_refusal_weights.py [--data ../shared/data/xstest] [--external DIR]
       [--families DIR|''] [--l2 0.01,0.03,0.1,0.3,1]"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeadapt.eval.judges.agreement import refusal_fit_rows  # noqa: E402
from safeadapt.eval.judges.calibrate import cv_predict, feature_matrix, fit_signed  # noqa: E402
from safeadapt.eval.judges.refusal_features import FEATURE_NAMES  # noqa: E402

CV_SALTS = ("safeadapt-judge-cv", "cv-rep-1", "cv-rep-2", "cv-rep-3")


def dev_rows(data: str, families: str | None = None, external: str | None = None) -> list[dict]:
    if external and not glob.glob(os.path.join(external, "completions_*.csv")):
        sys.exit(f"no completions_*.csv under {external}")
    rows = refusal_fit_rows(data, families or None, split="dev", external_dir=external or None)
    if not rows:
        sys.exit(f"no completions_*.csv under {data}")
    return rows


def score_into(acc: dict[str, list[float]], pred: np.ndarray, y: np.ndarray, fa: np.ndarray) -> None:
    """Append the agreement of `pred` with `y` overall ("all") and per file (`fa`: each row's file)."""
    acc.setdefault("all", []).append(float((pred == y).mean()))
    for f in sorted(set(fa.tolist())):
        m = fa == f
        acc.setdefault(f, []).append(float((pred[m] == y[m]).mean()))


def cv_agreement(X: np.ndarray, y: np.ndarray, groups: list[str], files: list[str], l2: float) -> dict[str, float]:
    """Out-of-fold agreement, averaged over the repeated fold seeds, overall and per file."""
    acc: dict[str, list[float]] = {}
    fa = np.array(files)
    for salt in CV_SALTS:
        pred = cv_predict(X, y, groups, l2, salt=salt) >= 0
        score_into(acc, pred, y, fa)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def nested_cv_agreement(
    X: np.ndarray, y: np.ndarray, groups: list[str], files: list[str], grid: list[float]
) -> dict[str, float]:
    """Like `cv_agreement`, but each outer training set picks its own L2 by an inner grouped 5-fold
    CV on that training set only, so the score carries no selection bias from the L2 choice."""
    from safeadapt.eval.judges.calibrate import fold_of

    acc: dict[str, list[float]] = {}
    fa, ga = np.array(files), np.array(groups)
    for salt in CV_SALTS:
        folds = np.array([fold_of(g, 5, salt) for g in groups])
        z = np.zeros(len(y))
        for f in range(5):
            tr = folds != f
            inner = {
                l2: float(((cv_predict(X[tr], y[tr], list(ga[tr]), l2, salt="inner-" + salt) >= 0) == y[tr]).mean())
                for l2 in grid
            }
            l2 = max(grid, key=lambda v: (inner[v], v))
            w = fit_signed(X[tr], y[tr], l2)
            z[~tr] = w[0] + X[~tr] @ w[1:]
        pred = z >= 0
        score_into(acc, pred, y, fa)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def hashed_bow(prompts: list[str], responses: list[str], dim: int = 1024) -> np.ndarray:
    """The learned alternative: hashed word uni+bigrams of the response opening (first 300 chars) and
    of the rest, log1p counts (a bag-of-words logistic classifier, no hand-written cues)."""
    import hashlib
    import re

    X = np.zeros((len(responses), dim))
    for i, r in enumerate(responses):
        t = r.lower()
        for part, text in (("o", t[:300]), ("l", t[300:])):
            ws = re.findall(r"[a-z']+", text)
            for g in ws + [a + " " + b for a, b in zip(ws, ws[1:])]:
                X[i, int(hashlib.md5(f"{part}:{g}".encode()).hexdigest()[:8], 16) % dim] += 1
    return np.log1p(X)


def learned_cv(prompts: list[str], responses: list[str], y: np.ndarray, groups: list[str], files: list[str]) -> None:
    """Grouped-CV agreement of the bag-of-words classifier, beside the rules' (same folds)."""
    X = hashed_bow(prompts, responses)
    sign = np.zeros(X.shape[1])  # unconstrained
    for l2 in (1.0, 3.0, 10.0):
        acc: dict[str, list[float]] = {}
        fa = np.array(files)
        for salt in CV_SALTS[:1]:
            from safeadapt.eval.judges.calibrate import fold_of

            folds = np.array([fold_of(g, 5, salt) for g in groups])
            z = np.zeros(len(y))
            for f in range(5):
                tr = folds != f
                w = fit_signed(X[tr], y[tr], l2, sign=sign)
                z[~tr] = w[0] + X[~tr] @ w[1:]
            pred = z >= 0
            score_into(acc, pred, y, fa)
        print(
            f"learned bag-of-words l2={l2:<5g} CV agreement "
            + "  ".join(f"{k} {np.mean(v):.4f}" for k, v in acc.items())
        )
    fa = np.array(files)
    Xr = feature_matrix(prompts, responses)
    for held in sorted(set(files)):  # out of family: fit on the other files' dev rows, score this file's
        m = fa == held
        wl = fit_signed(X[~m], y[~m], 3.0, sign=sign)
        wr = fit_signed(Xr[~m], y[~m], 0.1)
        al = float((((wl[0] + X[m] @ wl[1:]) >= 0) == y[m]).mean())
        ar = float((((wr[0] + Xr[m] @ wr[1:]) >= 0) == y[m]).mean())
        print(f"leave-one-file-out, scored on {held}: learned bag-of-words {al:.4f}, rules {ar:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "xstest"))
    ap.add_argument("--l2", default="0.01,0.03,0.1,0.3,1")
    ap.add_argument(
        "--learned",
        action="store_true",
        help="also cross-validate a hashed bag-of-words logistic classifier for comparison",
    )
    ap.add_argument(
        "--families",
        default=str(Path(__file__).resolve().parent / "data" / "judge_families"),
        help="also fit on the dev rows (refusal/compliance) of these labelled out-of-family files ('' = XSTest only)",
    )
    ap.add_argument("--external", default=os.environ.get("SAFEADAPT_XSTEST_EXTERNAL", ""),
                    help="also fit on the dev rows of other models' XSTest completions_*.csv in this directory "
                         "(upstream gpt4 / llama2new / mistralguard files; "
                         "default $SAFEADAPT_XSTEST_EXTERNAL, '' = none)")
    args = ap.parse_args()
    rows = dev_rows(args.data, args.families, args.external)
    X = feature_matrix([r["prompt"] for r in rows], [r["completion"] for r in rows])
    y = np.array([r["refusal"] for r in rows], dtype=float)
    groups = [r["group"] for r in rows]
    files = [r["file"] for r in rows]
    print(
        f"dev rows: {len(rows)} ({', '.join(f'{f}: {files.count(f)}' for f in sorted(set(files)))}), features: "
        f"{X.shape[1]}"
    )
    best = None
    for l2 in (float(v) for v in args.l2.split(",")):
        cv = cv_agreement(X, y, groups, files, l2)
        print(f"l2={l2:<6g} CV agreement " + "  ".join(f"{k} {v:.4f}" for k, v in cv.items()))
        if best is None or cv["all"] > best[1]["all"] + 1e-9:
            best = (l2, cv)
    grid = [float(v) for v in args.l2.split(",")]
    nested = nested_cv_agreement(X, y, groups, files, grid)
    print(
        "nested CV (L2 re-chosen inside each outer training set) "
        + "  ".join(f"{k} {v:.4f}" for k, v in nested.items())
    )
    if args.learned:
        learned_cv([r["prompt"] for r in rows], [r["completion"] for r in rows], y, groups, files)
    l2 = best[0]
    fa = np.array(files)
    for src in sorted(set(files)):  # cross-model transfer: weights from one model's dev rows, scored on the other's
        for dst in sorted(set(files) - {src}):
            w = fit_signed(X[fa == src], y[fa == src], l2)
            pred = (w[0] + X[fa == dst] @ w[1:]) >= 0
            print(f"transfer: fit on {src} dev, scored on {dst} dev: {float((pred == y[fa == dst]).mean()):.4f}")
    w = fit_signed(X, y, l2)
    pred = (np.hstack([np.ones((len(y), 1)), X]) @ w) >= 0
    print(f"chosen l2={l2:g}; dev-fit agreement {float((pred == y).mean()):.4f}")
    print(f"\nL2_PENALTY = {l2:g}\nBIAS = {w[0]:.3f}\nWEIGHTS: dict[str, float] = {{")
    for k, v in zip(FEATURE_NAMES, w[1:]):
        if round(v, 3):
            print(f'    "{k}": {v:.3f},')
    print("}")


if __name__ == "__main__":
    main()
