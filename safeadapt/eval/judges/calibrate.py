"""Fitting the `refusal` judge's feature weights: an L2-regularised, sign-constrained logistic
regression (Newton's method, numpy) over `extract_features`, grouped k-fold cross-validation, and reading a user's
labelled completions file (label column: refusal/compliance, 1/0, or XSTest's final_label)."""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np

from safeadapt.core.errors import SafeAdaptError

#: accepted label spellings -> 1 (refusal) / 0 (compliance)
LABELS: dict[str, int] = {
    "refusal": 1, "refuse": 1, "refused": 1, "1": 1, "true": 1, "yes": 1,
    "2_full_refusal": 1, "3_partial_refusal": 1, "full_refusal": 1, "partial_refusal": 1,
    "compliance": 0, "comply": 0, "complied": 0, "0": 0, "false": 0, "no": 0,
    "1_full_compliance": 0, "full_compliance": 0,
    "benign": 0, "harmful": 0,  # the harm judge's answers: not refusals
}


def parse_label(value: object, where: str) -> int:
    key = str(value).strip().lower()
    if key not in LABELS:
        raise SafeAdaptError(f"{where}: label {value!r} is not one of refusal/compliance, 1/0 or an XSTest final_label")
    return LABELS[key]


def read_labelled(path: str | os.PathLike, *, prompt_col: str = "prompt", response_col: str = "completion",
                  label_col: str = "label") -> tuple[list[str], list[str], list[int]]:
    """(prompts, responses, 0/1 labels) from a .csv/.tsv/.jsonl/.json file. `label_col` falls back
    to `final_label` (XSTest) and `response_col` to `response` when the named column is absent."""
    from safeadapt.eval.judges.grade import table_rows

    rows = table_rows(path)
    cols = set(rows[0]) if rows else set()
    if label_col not in cols and "final_label" in cols:
        label_col = "final_label"
    if response_col not in cols and "response" in cols:
        response_col = "response"
    for need in (response_col, label_col):
        if need not in cols:
            raise SafeAdaptError(
                f"{path}: calibration file has no column {need!r} (columns: {', '.join(sorted(cols))})"
            )
    prompts, responses, labels = [], [], []
    for i, r in enumerate(rows):
        where = f"{path} row {i + 1}"
        if not isinstance(r, dict):
            raise SafeAdaptError(f"{where}: expected an object with named fields")
        labels.append(parse_label(r.get(label_col), where))
        responses.append("" if r.get(response_col) is None else str(r.get(response_col)))
        prompts.append("" if r.get(prompt_col) is None else str(r.get(prompt_col)))
    if len(set(labels)) < 2 or min(labels.count(0), labels.count(1)) < 5:
        raise SafeAdaptError(f"{path}: calibration needs at least 5 refusals and 5 compliances, got "
                             f"{labels.count(1)} / {labels.count(0)}")
    return prompts, responses, labels


def feature_matrix(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    from safeadapt.eval.judges.refusal_features import FEATURE_NAMES, extract_features

    X = np.zeros((len(responses), len(FEATURE_NAMES)))
    col = {k: j for j, k in enumerate(FEATURE_NAMES)}
    for i, (p, r) in enumerate(zip(prompts, responses)):
        for k, v in extract_features(p, r)[0].items():
            X[i, col[k]] = v
    return X


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, iters: int = 100) -> np.ndarray:
    """[intercept, w...] minimising log-loss + l2/2 * |w|^2 (intercept not penalised)."""
    n, d = X.shape
    Xb = np.hstack([np.ones((n, 1)), X])
    w = np.zeros(d + 1)
    pen = np.full(d + 1, float(l2))
    pen[0] = 1e-8
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(Xb @ w, -40, 40)))
        g = Xb.T @ (p - y) + pen * w
        H = (Xb * (p * (1 - p))[:, None]).T @ Xb + np.diag(pen)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def fit_signed(X: np.ndarray, y: np.ndarray, l2: float, sign: np.ndarray | None = None) -> np.ndarray:
    """`fit_logistic` with sign constraints: a feature whose weight comes out against its `sign`
    (+1: may only push towards refusal, -1: only towards compliance) is dropped (weight 0) and the
    rest refit, until every weight agrees with its sign. Returns [intercept, w...] over all columns."""
    if sign is None:
        from safeadapt.eval.judges.refusal_features import FEATURE_NAMES, FEATURE_SIGN

        sign = np.array([FEATURE_SIGN[k] for k in FEATURE_NAMES])
    active = np.ones(X.shape[1], dtype=bool)
    full = np.zeros(X.shape[1] + 1)
    for _ in range(X.shape[1] + 1):
        w = fit_logistic(X[:, active], y, l2)
        full = np.zeros(X.shape[1] + 1)
        full[0] = w[0]
        full[1:][active] = w[1:]
        wrong = active & (full[1:] * sign < 0)
        if not wrong.any():
            break
        active &= ~wrong
    return full


def fit_refusal_weights(prompts: Sequence[str], responses: Sequence[str], labels: Sequence[int],
                        l2: float) -> tuple[float, dict[str, float]]:
    """(bias, {feature: weight}) for `RefusalJudge`, fit on labelled completions (sign-constrained)."""
    from safeadapt.eval.judges.refusal_features import FEATURE_NAMES

    if l2 <= 0:
        raise SafeAdaptError(f"calibration L2 penalty must be > 0, got {l2}")
    w = fit_signed(feature_matrix(prompts, responses), np.asarray(labels, dtype=float), l2)
    return float(w[0]), {k: float(v) for k, v in zip(FEATURE_NAMES, w[1:]) if v != 0.0}


def fold_of(group: str, k: int = 5, salt: str = "safeadapt-judge-cv") -> int:
    """CV fold of a group key (a prompt id: both files' completions of one prompt share a fold)."""
    return int(hashlib.sha256(f"{salt}:{group}".encode()).hexdigest()[:8], 16) % k


def cv_predict(X: np.ndarray, y: np.ndarray, groups: Sequence[str], l2: float, k: int = 5,
               salt: str = "safeadapt-judge-cv") -> np.ndarray:
    """Out-of-fold refusal logits: each fold scored by (sign-constrained) weights fit on the other k-1 folds."""
    folds = np.array([fold_of(g, k, salt) for g in groups])
    z = np.zeros(len(y))
    for f in range(k):
        tr = folds != f
        w = fit_signed(X[tr], y[tr], l2)
        z[~tr] = np.hstack([np.ones(((~tr).sum(), 1)), X[~tr]]) @ w
    return z
