"""Antidote (Huang et al. 2024): one-shot pruning after harmful fine-tuning. Wanda score
S_ij = |W_ij| * ||X_j||_2 with input-feature norms of the adapted model over a harmful calibration set
(response tokens, from the shared calibration pass); per output row the top `ratio` of entries by
score are pruned (row-wise, so large tensors stream in row blocks). `prune: weight` zeroes them (the
reference's full-fine-tuning mode); `prune: delta` scores and prunes the fine-tune's delta instead,
|W - W_aligned| * ||X_j||, setting those entries back to the aligned model's (the full-weight analogue
of the reference's default LoRA mode, which prunes only the fine-tune adapter's weights). `mode`: wanda
(default), reference (|W - W_aligned| * ||X_j|| scores, entries zeroed), and the paper's ablations
magnitude (|W|, or |W - W_aligned| with `prune: delta`) and random (seeded per tensor)."""

from __future__ import annotations

from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.methods.base import TensorJob
from safeadapt.repair.methods.base import ScoreNeed, fraction, repair_method, report, role

MODES = ("wanda", "reference", "magnitude", "random")
PRUNE = ("weight", "delta")


def _check(p: dict[str, Any]) -> None:
    fraction("ratio", p["ratio"])
    if p["mode"] not in MODES:
        raise SafeAdaptError(f"antidote: unknown mode {p['mode']!r}; use one of {', '.join(MODES)}")
    if p["prune"] not in PRUNE:
        raise SafeAdaptError(f"antidote: unknown prune {p['prune']!r}; use weight or delta")


def _scores(p: dict[str, Any]) -> list[ScoreNeed]:
    return [ScoreNeed("norms", "wanda", "safety", "adapted")] if p["mode"] in ("wanda", "reference") else []


def row_top_mask(score: Any, ratio: float) -> Any:
    """Boolean mask of the top int(ratio * columns) entries of each row by score."""
    import torch

    k = int(score.shape[1] * ratio)
    mask = torch.zeros(score.shape, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, torch.topk(score, k, dim=1, sorted=False).indices, True)
    return mask


@repair_method("antidote", params={"ratio": 0.1, "mode": "wanda", "prune": "weight"}, reference="https://arxiv.org/abs/2408.09600",
               check=_check, scores=_scores, optional=("aligned",), chunked=lambda _p: True)
def antidote(job: TensorJob) -> Any:
    import torch

    w = role(job, "adapted")
    mode, delta = job.params["mode"], job.params["prune"] == "delta"
    if mode == "random":  # seeded per tensor and row block (large tensors stream in row blocks)
        g = torch.Generator().manual_seed(job.seed + (job.rows.start if job.rows is not None else 0))
        score = torch.rand(w.shape, generator=g)
    else:
        base = (w - role(job, "aligned")).abs() if mode == "reference" or delta else w.abs()
        score = base.float()
        if mode in ("wanda", "reference"):
            norms = job.extras.get("norms")
            if norms is None:
                raise SafeAdaptError(f"antidote: no calibration activations reached {job.name} (is it a Linear layer?)")
            score = score * norms.to(score.dtype)[None, :]
    mask = row_top_mask(score, float(job.params["ratio"]))
    report(job, zeroed=int(mask.sum()), numel=w.numel())
    if delta:
        return torch.where(mask, role(job, "aligned").to(w.dtype), w)
    return w.masked_fill(mask, 0)
