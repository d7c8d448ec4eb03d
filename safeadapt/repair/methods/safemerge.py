"""SafeMERGE (Djuhera et al. 2025): per weight matrix, project the fine-tuned delta
dW = W_adapted - W_aligned onto the safety subspace of V = W_aligned - W_unaligned
(C dW = V V^T dW / ||V||_F, with `unaligned` the model without safety alignment: the pre-alignment
base or a harmful fine-tune); if cos(vec(C dW), vec(dW)) < `threshold` (0.35) the layer is mixed with
the safety model, `weight` * adapted + (1 - weight) * safety (0.8 / 0.2; `mix: dare` drops the two
deltas over W_aligned at `density` first), else kept. `safety` defaults to the aligned model."""

from __future__ import annotations

from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.methods.base import TensorJob
from safeadapt.repair.merge.methods.generalized import random_prune
from safeadapt.repair.methods.base import fraction, repair_method, report, role


def _check(p: dict[str, Any]) -> None:
    fraction("weight", p["weight"])
    fraction("density", p["density"])
    float(p["threshold"])
    if p["mix"] not in ("linear", "dare"):
        raise SafeAdaptError(f"safemerge: unknown mix {p['mix']!r}; use linear or dare")


def projection_cosine(dw: Any, v: Any) -> float | None:
    """cos(vec(C dW), vec(dW)) with C = V V^T / ||V||_F; None when dW or V is zero."""
    import torch

    dw, v = dw.double(), v.double()
    nv, nd = torch.linalg.norm(v), torch.linalg.norm(dw)
    if nv == 0 or nd == 0:
        return None
    # the cheaper association: (V V^T) dW when rows <= columns, else V (V^T dW)
    cdw = (v @ v.T) @ dw if v.shape[0] <= v.shape[1] else v @ (v.T @ dw)
    cdw = cdw / nv
    nc = torch.linalg.norm(cdw)
    if nc == 0:
        return 0.0
    return float((cdw * dw).sum() / (nc * nd))


@repair_method("safemerge", params={"threshold": 0.35, "weight": 0.8, "mix": "linear", "density": 0.5, "rescale": True},
               needs=("aligned", "unaligned"), optional=("safety",), reference="https://arxiv.org/abs/2503.17239",
               check=_check)
def safemerge(job: TensorJob) -> Any:
    adapted, aligned = role(job, "adapted"), role(job, "aligned")
    safety = role(job, "safety") if job.extras["roles"].get("safety") is not None else aligned
    cos = projection_cosine(adapted - aligned, aligned - role(job, "unaligned"))
    mixed = cos is not None and cos < float(job.params["threshold"])
    report(job, cosine=cos, mixed=mixed)
    if not mixed:
        return adapted
    a = float(job.params["weight"])
    if job.params["mix"] == "linear":
        return a * adapted + (1 - a) * safety
    d, r = float(job.params["density"]), bool(job.params["rescale"])
    return (
        aligned
        + a * random_prune(adapted - aligned, d, r, job.seed)
        + (1 - a) * random_prune(safety - aligned, d, r, job.seed + 1)
    )
