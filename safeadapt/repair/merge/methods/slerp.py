"""SLERP: spherical interpolation between the base model (t=0) and one other model (t=1) along the
great circle through the two flattened tensors; linear interpolation when they are nearly colinear
(|cos| > 0.9995). `t` may vary by layer (gradient) and by tensor-name filter.

Arithmetic follows mergekit 0.1.5 so results agree bit for bit: fp32 (fp64 for fp64 inputs),
norms and the dot product accumulated over 2**20-element chunks, coefficients as fp32 tensors."""

from __future__ import annotations

from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.methods.base import REQUIRED, TensorJob, merge_method

DOT_THRESHOLD = 0.9995
EPS = 1e-8
CHUNK = 1 << 20


def slerp_tensors(t: float, v0: Any, v1: Any) -> Any:
    import torch

    dtype = torch.float64 if v0.dtype == torch.float64 else torch.float32
    a = v0.reshape(1, -1)
    b = v1.reshape(1, -1)
    tt = torch.tensor([t], dtype=torch.float32).to(dtype).reshape(-1, 1)
    n = a.shape[1]
    if n == 0:
        return ((1 - tt) * a + tt * b).reshape(v0.shape).to(v0.dtype)
    starts = range(0, n, CHUNK)
    na = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(a[:, s : s + CHUNK].to(dtype), dim=1, keepdim=True) for s in starts]),
        dim=0,
    )
    nb = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(b[:, s : s + CHUNK].to(dtype), dim=1, keepdim=True) for s in starts]),
        dim=0,
    )
    na = torch.where(na > EPS, na, 1)
    nb = torch.where(nb > EPS, nb, 1)
    parts = [
        ((a[:, s : s + CHUNK].to(dtype) / na) * (b[:, s : s + CHUNK].to(dtype) / nb)).sum(dim=1, keepdim=True)
        for s in starts
    ]
    dot = torch.stack(parts).sum(dim=0).clamp(-1, 1)
    colinear = dot.abs() > DOT_THRESHOLD
    theta = torch.acos(torch.where(colinear, 0, dot))
    sin_theta = torch.sin(theta)
    ca = torch.where(colinear, 1 - tt, torch.sin((1 - tt) * theta) / sin_theta)
    cb = torch.where(colinear, tt, torch.sin(tt * theta) / sin_theta)
    out = torch.empty_like(a)
    for s in starts:
        out[:, s : s + CHUNK] = ca * a[:, s : s + CHUNK].to(dtype) + cb * b[:, s : s + CHUNK].to(dtype)
    return out.reshape(v0.shape)


@merge_method("slerp", params={"t": REQUIRED}, needs_base=True, reference="https://en.wikipedia.org/wiki/Slerp")
def slerp(job: TensorJob) -> Any:
    if len(job.tensors) == 1:
        return job.tensors[0]
    if len(job.tensors) != 2 or job.base is None:
        raise SafeAdaptError(f"slerp merges exactly two models, one of them base_model (tensor {job.name})")
    return slerp_tensors(float(job.params["t"]), job.tensors[job.base], job.tensors[1 - job.base])
