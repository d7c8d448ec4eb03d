"""Task arithmetic (Ilharco et al. 2023): base + sum_i w_i (model_i - base); `normalize` divides by
the sum of weights (off by default, as in mergekit)."""

from __future__ import annotations

from typing import Any

from safeadapt.repair.merge.methods.base import REQUIRED, TensorJob, merge_method
from safeadapt.repair.merge.methods.generalized import GTA_PARAMS, GTA_TENSOR_PARAMS, generalized_task_arithmetic


@merge_method(
    "task_arithmetic",
    params=GTA_PARAMS,
    tensor_params={"weight": REQUIRED, **GTA_TENSOR_PARAMS},
    needs_base=True,
    reference="https://arxiv.org/abs/2212.04089",
    chunked=lambda _gp, _tps: True,
)
def task_arithmetic(job: TensorJob) -> Any:
    return generalized_task_arithmetic(job, consensus=None, sparsify=None)
