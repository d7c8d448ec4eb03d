"""Front arithmetic for the search: Pareto dominance with per-objective directions, non-dominated
sorting into ranks, hypervolume (optuna's exact WFG implementation) and Spearman rank correlation
with average ranks for ties."""

from __future__ import annotations

import math
from typing import Sequence

Vec = Sequence[float]


def to_min(values: Vec, directions: Sequence[str]) -> list[float]:
    """Values as minimisation losses (maximised objectives negated)."""
    return [float(v) if d == "minimize" else -float(v) for v, d in zip(values, directions)]


def dominates(a: Vec, b: Vec) -> bool:
    """a dominates b (both minimisation losses): no worse anywhere, better somewhere."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front_indices(points: list[Vec], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points (duplicates of a front point are all kept)."""
    losses = [to_min(p, directions) for p in points]
    return [i for i, a in enumerate(losses) if not any(dominates(b, a) for j, b in enumerate(losses) if j != i)]


def ranks(points: list[Vec], directions: Sequence[str]) -> list[int]:
    """Non-dominated sorting: 0 for the front, 1 for the front of the rest, ..."""
    left = list(range(len(points)))
    out = [0] * len(points)
    r = 0
    while left:
        f = front_indices([points[i] for i in left], directions)
        chosen = {left[i] for i in f}
        for i in chosen:
            out[i] = r
        left = [i for i in left if i not in chosen]
        r += 1
    return out


def hypervolume(points: list[Vec], directions: Sequence[str], reference: Vec) -> float:
    """Hypervolume dominated by `points` up to `reference` (given in the objectives' own units)."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    ref = np.asarray(to_min(reference, directions), dtype=float)
    losses = [to_min(p, directions) for p in points]
    inside = [x for x in losses if all(v < r for v, r in zip(x, ref))]
    if not inside:
        return 0.0
    return float(compute_hypervolume(np.asarray(inside, dtype=float), ref))


def _avg_ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson on average ranks); None with < 3 points or a constant side."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = _avg_ranks(x), _avg_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)
