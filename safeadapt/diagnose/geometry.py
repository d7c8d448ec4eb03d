"""Pure per-layer geometry of last-prompt-token hidden states (no I/O, float64): held-out linear
probe accuracy harmful vs harmless, the Safety-Layers cosine gap and the layer range where it rises,
the refusal direction (difference of means) with its separation, and cross-model comparisons."""

from __future__ import annotations

from typing import Any

MIN_PER_CLASS = 4


def probe_accuracy(harm: Any, safe: Any, *, seed: int = 0, test_frac: float = 0.3, l2: float = 1e-2) -> float:
    """Accuracy on a held-out stratified split of an L2-regularised logistic regression (LBFGS,
    features standardised on the training part) separating harmful (1) from harmless (0) rows."""
    import torch

    g = torch.Generator().manual_seed(seed)
    tr_x, tr_y, te_x, te_y = [], [], [], []
    for x, label in ((harm, 1.0), (safe, 0.0)):
        perm = torch.randperm(x.shape[0], generator=g)
        n_te = max(1, int(round(test_frac * x.shape[0])))
        te_x.append(x[perm[:n_te]]); tr_x.append(x[perm[n_te:]])  # noqa: E702
        te_y += [label] * n_te; tr_y += [label] * (x.shape[0] - n_te)  # noqa: E702
    xtr, xte = torch.cat(tr_x).double(), torch.cat(te_x).double()
    ytr, yte = torch.tensor(tr_y, dtype=torch.float64), torch.tensor(te_y, dtype=torch.float64)
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-8)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    w = torch.zeros(xtr.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xtr @ w + b, ytr) + l2 * (w * w).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = ((xte @ w + b) > 0).double()
    return float((pred == yte).double().mean())


def _unit_rows(x: Any) -> Any:
    import torch

    return x.double() / torch.linalg.vector_norm(x.double(), dim=-1, keepdim=True).clamp_min(1e-12)


def cosine_gap(harm: Any, safe: Any) -> float:
    """Safety Layers' gap: mean cos(harmless, harmless) over distinct pairs minus mean cos(harmless, harmful)."""
    s, h = _unit_rows(safe), _unit_rows(harm)
    n = s.shape[0]
    ss = s @ s.T
    within = (float(ss.sum()) - float(ss.diagonal().sum())) / (n * (n - 1))
    return within - float((s @ h.T).mean())


def rising_range(gaps: list[float], *, eps: float = 1e-3) -> tuple[int, int] | None:
    """Safety Layers: skipping layer 0, the first layer where the gap rises by more than `eps` over
    the previous one, extended while it keeps rising. None when it never rises."""
    start = next((i for i in range(2, len(gaps)) if gaps[i] - gaps[i - 1] > eps), None)
    if start is None:
        return None
    end = start
    while end + 1 < len(gaps) and gaps[end + 1] > gaps[end]:
        end += 1
    return start, end


def refusal_direction(harm: Any, safe: Any) -> Any:
    """Difference of means, harmful minus harmless (float64, not normalised)."""
    return harm.double().mean(0) - safe.double().mean(0)


def separation(harm: Any, safe: Any, direction: Any) -> float:
    """d' of the projections on the unit direction: mean gap over the pooled standard deviation."""
    import torch

    u = direction / torch.linalg.vector_norm(direction).clamp_min(1e-12)
    ph, ps = harm.double() @ u, safe.double() @ u
    pooled = ((ph.var(unbiased=True) + ps.var(unbiased=True)) / 2).sqrt().clamp_min(1e-12)
    return float((ph.mean() - ps.mean()) / pooled)


def cosine(a: Any, b: Any) -> float | None:
    import torch

    na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
    return float(a.double() @ b.double()) / (na * nb) if na > 0 and nb > 0 else None


def projection_ratio(ref_dir: Any, other_dir: Any) -> float | None:
    """How much of the other model's harmful-minus-harmless mean lies along the reference's unit
    direction, relative to the reference's own: (r_other . r_ref_hat) / ||r_ref|| (1 = as much)."""
    import torch

    n = float(torch.linalg.vector_norm(ref_dir))
    return float(other_dir.double() @ ref_dir.double()) / (n * n) if n > 0 else None


def layer_table(harm: Any, safe: Any, *, seed: int = 0, probe: bool = True) -> tuple[list[dict[str, Any]], Any]:
    """Per hidden-state index l (0 = embeddings, l = after decoder block l - 1): probe accuracy,
    cosine gap, refusal-direction norm and separation. Returns (records, directions [L+1, H] float64)."""
    import torch

    if harm.shape[0] < MIN_PER_CLASS or safe.shape[0] < MIN_PER_CLASS:
        raise ValueError(f"need at least {MIN_PER_CLASS} prompts per class")
    recs, dirs = [], []
    for layer in range(harm.shape[1]):
        h, s = harm[:, layer], safe[:, layer]
        d = refusal_direction(h, s)
        dirs.append(d)
        recs.append({"layer": layer, "probe_acc": probe_accuracy(h, s, seed=seed + layer) if probe else None,
                     "cos_gap": cosine_gap(h, s), "direction_norm": float(torch.linalg.vector_norm(d)),
                     "separation": separation(h, s, d)})
    return recs, torch.stack(dirs)


def choose_direction_layer(recs: list[dict[str, Any]], *, max_frac: float = 0.8) -> int:
    """The layer whose direction separates the classes best (largest d'), among layers 1 ..
    floor(max_frac * L) (the refusal-direction work drops the last 20% of layers)."""
    n_blocks = len(recs) - 1
    hi = max(1, int(max_frac * n_blocks))
    cands = [r for r in recs if 1 <= r["layer"] <= hi]
    return max(cands, key=lambda r: r["separation"])["layer"]
