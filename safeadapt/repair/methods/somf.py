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
from safeadapt.repair.somf_fuse import constant_keeps, fuse_masked

FUSIONS = ("task_arithmetic", "ties", "dare")


def _check(p: dict[str, Any]) -> None:
    fraction("density", p["density"])
    if p["fusion"] not in FUSIONS:
        raise SafeAdaptError(f"somf: unknown fusion {p['fusion']!r}; use one of {', '.join(FUSIONS)}")
    if float(p["temperature"]) <= 0 or float(p["lr"]) <= 0 or int(p["steps"]) < 1:
        raise SafeAdaptError("somf: temperature and lr must be positive and steps at least 1")


def _train(**kw: Any) -> dict[str, Any]:
    from safeadapt.repair.somf_train import train_somf

    return train_somf(**kw)


@repair_method(
    "somf",
    params={
        "temperature": 0.5,
        "beta": 0.1,
        "lr": 1e-3,
        "steps": 50,
        "batch_size": 4,
        "max_length": 256,
        "fusion": "task_arithmetic",
        "weight": 1.0,
        "density": 1.0,
    },
    needs=("aligned",),
    optional=("others",),
    reference="https://arxiv.org/abs/2405.09055",
    scope="language",
    check=_check,
    own_filters=True,
    data=("pairs",),
    train=lambda **kw: _train(**kw),
)
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
