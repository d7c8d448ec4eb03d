"""SOMF, subspace-oriented model fusion (Yi et al. 2024, arXiv 2405.09055): task vectors
tau_i = theta_i - theta_aligned (the adapted model and `others`), one mask-logit tensor per parameter
and task (init 0, p = 0.5), relaxed-Bernoulli masks M at temperature 0.5 (reparameterised),
realigned = theta_aligned + fuse_i(M_i * tau_i / mean(M_i)). Only the logits train, with TRL's DPO
loss (beta 0.1, lr 1e-3) on safety preference pairs; at the end M = sigmoid(logit) > 0.5 with the
mean rescaling kept. Fusion: task_arithmetic, ties (trim + sign election, constant masks from the
unmasked task vectors) or dare (seeded drop, rescaled by 1/density). Masks train on the tensors the
recipe's `filters` select (default: every decoder-layer matrix); the rest are fused unmasked."""

from __future__ import annotations

from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.methods.base import TensorJob
from safeadapt.repair.methods.base import fraction, repair_method, report, role

FUSIONS = ("task_arithmetic", "ties", "dare")


def _check(p: dict[str, Any]) -> None:
    fraction("density", p["density"])
    if p["fusion"] not in FUSIONS:
        raise SafeAdaptError(f"somf: unknown fusion {p['fusion']!r}; use one of {', '.join(FUSIONS)}")
    if float(p["temperature"]) <= 0 or float(p["lr"]) <= 0 or int(p["steps"]) < 1:
        raise SafeAdaptError("somf: temperature and lr must be positive and steps at least 1")


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


def _train(**kw: Any) -> dict[str, Any]:
    from safeadapt.repair.somf_train import train_somf

    return train_somf(**kw)


@repair_method("somf", params={"temperature": 0.5, "beta": 0.1, "lr": 1e-3, "steps": 50, "batch_size": 4, "max_length": 256,
                               "fusion": "task_arithmetic", "weight": 1.0, "density": 1.0},
               needs=("aligned",), optional=("others",), reference="https://arxiv.org/abs/2405.09055", scope="language",
               check=_check, own_filters=True, data=("pairs",), train=lambda **kw: _train(**kw))
def somf(job: TensorJob) -> Any:
    import torch

    aligned = role(job, "aligned")
    others = [job.tensors[i] for i in job.extras["roles"].get("others", [])]
    taus = [role(job, "adapted") - aligned] + [o - aligned for o in others]
    masks = job.extras.get("somf_masks")
    if masks is None:
        masks = [torch.ones_like(t) for t in taus]
    else:
        masks = [m.to(aligned.dtype)[: t.shape[0]] for m, t in zip(masks, taus)]
        report(job, kept=[round(float(m.mean()), 6) for m in masks])
    keeps = constant_keeps(taus, job.params["fusion"], float(job.params["density"]), job.seed)
    return aligned + fuse_masked(taus, masks, keeps, float(job.params["weight"]))
