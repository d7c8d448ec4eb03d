"""SOMF's fuse math, shared by the method (methods/somf.py) and its mask trainer (somf_train.py):
the masks of the fusion that do not depend on M, and the masked, mean-rescaled sum of task vectors."""

from __future__ import annotations

from typing import Any


def constant_keeps(taus: list[Any], fusion: str, density: float, seed: int) -> list[Any] | None:
    """Masks of the fusion that do not depend on M (TIES trim + sign election, DARE drop with its
    1/density rescale), computed from the unmasked task vectors; None for task arithmetic."""
    import torch

    if fusion == "task_arithmetic" or density >= 1.0 and fusion == "dare":
        return None
    if fusion == "dare":
        keeps = []
        for i, t in enumerate(taus):
            g = torch.Generator().manual_seed(seed + i)
            keeps.append((torch.rand(t.shape, generator=g) < density).to(t.dtype) / density)
        return keeps
    trimmed = []
    for t in taus:
        k = int(t.numel() * density)
        m = torch.zeros(t.numel(), dtype=torch.bool)
        if k > 0:
            m[torch.topk(t.abs().reshape(-1), k, sorted=False).indices] = True
        trimmed.append(m.reshape(t.shape))
    elected = torch.sign(sum(torch.where(m, t, torch.zeros_like(t)) for m, t in zip(trimmed, taus)))
    return [(m & (torch.sign(t) == elected)).to(t.dtype) for m, t in zip(trimmed, taus)]


def fuse_masked(taus: list[Any], masks: list[Any], keeps: list[Any] | None, weight: float) -> Any:
    """sum_i weight * keep_i * M_i * tau_i / mean(M_i) (a zero mask contributes nothing)."""
    out = 0
    for i, (t, m) in enumerate(zip(taus, masks)):
        x = m * t / m.mean().clamp_min(1e-12)
        if keeps is not None:
            x = x * keeps[i]
        out = out + weight * x
    return out
