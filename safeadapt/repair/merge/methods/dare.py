"""DARE (Yu et al. 2023): drop each task-vector entry with probability 1-density and rescale the
survivors to restore the task vector's L1 norm (`rescale`, mergekit 0.1.5 semantics); `dare_linear` sums the results,
`dare_ties` adds TIES sign election. Seeded
per tensor (from the global seed and the tensor name) and per model, so runs are reproducible.
Large tensors stream in row blocks (`dare_prepare`): masks are drawn per block, so the random
stream, not the distribution, differs from a whole-tensor draw."""

from __future__ import annotations

from typing import Any

from safeadapt.repair.merge.methods.base import REQUIRED, TensorJob, merge_method
from safeadapt.repair.merge.methods.generalized import (
    GTA_PARAMS,
    GTA_TENSOR_PARAMS,
    dare_prepare,
    generalized_task_arithmetic,
    random_prune,
)

_PARAMS = {**GTA_PARAMS, "rescale": True}
_TPARAMS = {"weight": REQUIRED, **GTA_TENSOR_PARAMS}


def _drop(job: TensorJob):
    return lambda d, tp, seed: random_prune(d, tp["density"], bool(job.params["rescale"]), seed)


@merge_method("dare_linear", params=_PARAMS, tensor_params=_TPARAMS, needs_base=True, reference="https://arxiv.org/abs/2311.03099",
              chunked=lambda _gp, _tps: True, prepare=dare_prepare)
def dare_linear(job: TensorJob) -> Any:
    return generalized_task_arithmetic(job, consensus=None, sparsify=_drop(job))


@merge_method("dare_ties", params=_PARAMS, tensor_params=_TPARAMS, needs_base=True, reference="https://arxiv.org/abs/2311.03099",
              chunked=lambda _gp, _tps: True, prepare=dare_prepare)
def dare_ties(job: TensorJob) -> Any:
    return generalized_task_arithmetic(job, consensus="sum", sparsify=_drop(job))
