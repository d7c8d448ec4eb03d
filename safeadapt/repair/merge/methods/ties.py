"""TIES merging (Yadav et al. 2023): trim each task vector to its top-`density` magnitudes, elect a
sign per entry by the weighted sum, keep agreeing entries and divide by the sum of their weights
(`normalize`, on by default). Streams in row chunks without `rescale` (masks from `ties_prepare`)."""

from __future__ import annotations

from typing import Any

from safeadapt.repair.merge.methods.base import REQUIRED, TensorJob, merge_method
from safeadapt.repair.merge.methods.generalized import (
    GTA_PARAMS,
    GTA_TENSOR_PARAMS,
    generalized_task_arithmetic,
    magnitude_prune,
    ties_prepare,
)


@merge_method(
    "ties",
    params={**GTA_PARAMS, "normalize": True},
    tensor_params={"weight": REQUIRED, **GTA_TENSOR_PARAMS},
    needs_base=True,
    reference="https://arxiv.org/abs/2306.01708",
    chunked=lambda gp, _tps: not gp["rescale"],
    prepare=ties_prepare,
)
def ties(job: TensorJob) -> Any:
    return generalized_task_arithmetic(
        job,
        consensus="sum",
        sparsify=lambda d, tp, _seed: magnitude_prune(d, tp["density"], bool(job.params["rescale"])),
    )
