"""RESTA (Bhardwaj et al. 2024, arXiv 2402.11746): add the safety vector back,
theta = theta_adapted + gamma * (theta_aligned - theta_unaligned), where `unaligned` is the aligned
model after a harmful fine-tune (`safeadapt train attack`). Optional DARE on the adapted delta
(theta_adapted - theta_aligned) with `density` (seeded per tensor). Elementwise: streams row blocks."""

from __future__ import annotations

from typing import Any

from safeadapt.repair.merge.methods.base import TensorJob
from safeadapt.repair.merge.methods.generalized import random_prune
from safeadapt.repair.methods.base import fraction, repair_method, role


def _check(p: dict[str, Any]) -> None:
    fraction("density", p["density"], 0.0, 1.0)
    float(p["gamma"])


@repair_method("resta", params={"gamma": 0.5, "density": 1.0, "rescale": True}, needs=("aligned", "unaligned"),
               reference="https://arxiv.org/abs/2402.11746", scope="language", check=_check,
               chunked=lambda p: float(p["density"]) >= 1.0)
def resta(job: TensorJob) -> Any:
    adapted, aligned, unaligned = role(job, "adapted"), role(job, "aligned"), role(job, "unaligned")
    gamma = float(job.params["gamma"])
    density = float(job.params["density"])
    if density < 1.0:
        delta = random_prune(adapted - aligned, density, bool(job.params["rescale"]), job.seed)
        adapted = aligned + delta
    return adapted + gamma * (aligned - unaligned)
