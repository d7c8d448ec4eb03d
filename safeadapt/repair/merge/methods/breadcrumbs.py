"""Model Breadcrumbs (Davari & Belilovsky 2023): from each task vector drop the largest `gamma`
fraction (outliers) and the smallest entries, keeping `density`, then sum as task arithmetic."""

from __future__ import annotations

from typing import Any

from safeadapt.repair.merge.methods.base import REQUIRED, TensorJob, merge_method
from safeadapt.repair.merge.methods.generalized import (
    GTA_PARAMS,
    GTA_TENSOR_PARAMS,
    generalized_task_arithmetic,
    outlier_prune,
)


@merge_method(
    "breadcrumbs",
    params=GTA_PARAMS,
    tensor_params={"weight": REQUIRED, **GTA_TENSOR_PARAMS, "gamma": 0.01},
    needs_base=True,
    reference="https://arxiv.org/abs/2312.06795",
)
def breadcrumbs(job: TensorJob) -> Any:
    return generalized_task_arithmetic(
        job,
        consensus=None,
        sparsify=lambda d, tp, _s: outlier_prune(d, tp["density"], tp["gamma"], bool(job.params["rescale"])),
    )
