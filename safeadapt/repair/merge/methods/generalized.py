"""Generalised task arithmetic shared by task_arithmetic, ties, dare_* and breadcrumbs, with
mergekit 0.1.5 semantics: deltas against the base, optional per-model sparsification, weighting,
optional TIES sign consensus, division by the sum of weights where signs agree (`normalize`), then
`base + mixed` in the compute dtype. `rescale` restores each pruned task vector's L1 norm, as
mergekit 0.1.5 does; `int8_mask` is accepted for config compatibility (the mask is boolean here, so
it changes nothing numerically). Sign election and random pruning are peft's primitives, loaded
only by the methods that use them and without peft's package import (`peft_merge_utils`).

Chunked streaming: without `rescale`, task arithmetic and TIES are elementwise once each model's
top-k keep mask is known, so the engine streams large tensors in row chunks. `ties_prepare` finds
each mask from the k-th largest |delta| (`kthvalue`) when no tie straddles the cut, else with the
same descending `argsort` mergekit uses (CPU sort is not stable, so only it reproduces the tie
breaking), and returns the masks for the chunked pass. DARE streams too (`dare_prepare`: masks
drawn per block, L1 rescale factor from whole-tensor sums)."""

from __future__ import annotations

from typing import Any, Callable, Literal

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.methods.base import PrepareJob, TensorJob

Sparsify = Callable[[Any, dict[str, Any], int], Any]

_PEFT_MERGE_UTILS: Any = None


def peft_merge_utils() -> Any:
    """peft's `peft.utils.merge_utils` (sign election, random pruning), loaded from peft's installed
    file without running `peft/__init__`, which imports transformers and all of peft (~130 MB RSS and
    4 s CPU per merge; the module itself needs only torch). Falls back to the normal import."""
    global _PEFT_MERGE_UTILS
    if _PEFT_MERGE_UTILS is None:
        import importlib.util
        import sys
        from pathlib import Path

        mod = sys.modules.get("peft.utils.merge_utils")
        if mod is None:
            try:
                spec = importlib.util.find_spec("peft")  # locates the package without importing it
                path = Path(spec.submodule_search_locations[0]) / "utils" / "merge_utils.py"  # type: ignore[union-attr,index]
                mspec = importlib.util.spec_from_file_location("safeadapt._peft_merge_utils", path)
                mod = importlib.util.module_from_spec(mspec)  # type: ignore[arg-type]
                mspec.loader.exec_module(mod)  # type: ignore[union-attr]
                mod.calculate_majority_sign_mask, mod.random_pruning  # noqa: B018 - the two we use
            except Exception:
                import peft.utils.merge_utils as mod  # type: ignore[no-redef]
        _PEFT_MERGE_UTILS = mod
    return _PEFT_MERGE_UTILS

GTA_PARAMS = {"normalize": False, "int8_mask": False, "rescale": False, "lambda": 1.0}
GTA_TENSOR_PARAMS: dict[str, Any] = {"density": 1.0}


def l1_rescale(original: Any, masked: Any, rescale: bool, eps: float = 1e-7) -> Any:
    """mergekit 0.1.5's `rescale`: scale the surviving entries so the L1 norm matches the unpruned
    task vector (skipped when either norm is below eps)."""
    if not rescale:
        return masked
    before = original.abs().sum()
    after = masked.abs().sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def magnitude_prune(delta: Any, density: float, rescale: bool = False) -> Any:
    """Keep the `max(1, int(density * numel))` largest-magnitude entries.

    Ranks with a descending argsort over |delta| in fp32 (as mergekit does) rather than peft's
    `topk`, so that equal magnitudes at the cut break the same way and results match bit for bit."""
    import torch

    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    k = max(1, int(density * delta.numel()))
    mask = torch.zeros(delta.numel(), dtype=delta.dtype, device=delta.device)
    order = torch.argsort(delta.abs().reshape(-1).float(), descending=True)[:k]
    mask[order] = 1
    return l1_rescale(delta, delta * mask.reshape_as(delta), rescale)


def random_prune(delta: Any, density: float, rescale: bool, seed: int) -> Any:
    """DARE: keep each entry with probability `density` (peft's `random_pruning`, under a private RNG
    seeded per tensor and model), then L1-rescale when `rescale` (mergekit 0.1.5 semantics)."""
    import torch

    random_pruning = peft_merge_utils().random_pruning
    if density >= 1:
        return delta
    work = delta if delta.dtype in (torch.float32, torch.float64, torch.bfloat16) else delta.float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        masked = random_pruning(work, density, rescale=False)
    return l1_rescale(work, masked, rescale).to(delta.dtype)


def outlier_prune(delta: Any, density: float, gamma: float, rescale: bool = False) -> Any:
    """Model Breadcrumbs: drop the top `gamma` fraction by magnitude (outliers) and then the smallest
    entries, keeping `density` of the tensor (fewer outliers dropped when both can't be met)."""
    import torch

    if density >= 1:
        return delta
    n = delta.numel()
    keep = int(density * n)
    n_bot = max(0, n - keep - int(gamma * n))
    order = torch.sort(delta.abs().reshape(-1).float(), descending=False).indices
    mask = torch.zeros(n, dtype=delta.dtype, device=delta.device)
    mask[order[n_bot : n_bot + keep]] = 1
    return l1_rescale(delta, delta * mask.reshape_as(delta), rescale)


def top_k_mask(absd: Any, k: int, *, try_kthvalue: bool = True, info: dict[str, Any] | None = None) -> Any:
    """Boolean mask of the entries mergekit's `argsort(descending)[:k]` keeps, for a flat fp32 |delta|.

    When the k-th largest value is not tied across the cut (count(> thr) + count(== thr) == k) the
    mask is simply `absd >= thr` (kthvalue: linear time); otherwise the argsort itself decides.
    `try_kthvalue=False` goes straight to the argsort (same result); `info["kthvalue"]` says which
    path decided."""
    import torch

    n = absd.numel()
    if info is not None:
        info["kthvalue"] = False
    mask = torch.zeros(n, dtype=torch.bool)
    if k >= n:
        mask.fill_(True)
        return mask
    if try_kthvalue and not bool(torch.isnan(absd).any()):
        thr = torch.kthvalue(absd, n - k + 1).values
        ge = absd >= thr
        if int(ge.sum()) == k:
            if info is not None:
                info["kthvalue"] = True
            return ge
        del ge
    mask[torch.argsort(absd, descending=True)[:k]] = True
    return mask


def ties_prepare(pj: PrepareJob) -> dict[str, Any] | None:
    """Per-model top-k keep masks (flat, bool) of the task vectors of one tensor, for chunked TIES.
    |delta| is built chunk by chunk in the compute dtype then fp32, exactly as `magnitude_prune`."""
    import torch

    if pj.base is None:
        return None
    numel, row_numel = pj.numel, pj.row_numel
    masks: list[Any] = []
    for i, tp in enumerate(pj.tensor_params):
        dens = float(tp["density"])
        if i == pj.base or dens >= 1:
            masks.append(None)
            continue
        if dens <= 0 or numel == 0:
            return None
        absd = torch.empty(numel, dtype=torch.float32)
        for r0 in range(0, pj.rows, pj.chunk_rows):
            r1 = min(pj.rows, r0 + pj.chunk_rows)
            b = pj.load_rows(pj.base, r0, r1)
            x = pj.load_rows(i, r0, r1)
            absd[r0 * row_numel : r1 * row_numel] = (x.to(b.dtype) - b).abs().reshape(-1).float()
            del b, x
        # task vectors quantised to the base's ulp tie at the cut in every bf16 tensor (and in the
        # vocabulary-sized fp32 ones): after four argsort fallbacks in a row, skip the kthvalue try
        # (~25% of an argsort) for 16 masks. Both paths give the same mask; this only saves time.
        st = pj.state
        use_kth = st.get("kth_fails", 0) < 4 or st.get("since_try", 0) >= 16
        info: dict[str, Any] = {}
        masks.append(top_k_mask(absd, max(1, int(dens * numel)), try_kthvalue=use_kth, info=info))
        if use_kth:
            st["kth_fails"] = 0 if info["kthvalue"] else st.get("kth_fails", 0) + 1
            st["since_try"] = 0
        else:
            st["since_try"] = st.get("since_try", 0) + 1
        del absd
    return {"keep": masks}


def dare_prepare(pj: PrepareJob) -> dict[str, Any] | None:
    """Chunked DARE: per-model keep masks drawn block by block (Bernoulli(density), a private
    generator seeded from the tensor seed, the model index and the block index) and, with `rescale`,
    the whole-tensor L1 ratio sum|delta| / sum|kept delta| (fp64 sums over blocks, then the ratio in
    the working dtype, as `random_prune` computes it). The random stream differs from the
    whole-tensor path (one draw per tensor), so outputs depend on the block size, not only the seed;
    the kept fraction and rescaling are the same."""
    import torch

    if pj.base is None:
        return None
    numel, row_numel = pj.numel, pj.row_numel
    masks: list[Any] = []
    scales: list[Any] = []
    rescale = bool(pj.params.get("rescale"))
    for i, tp in enumerate(pj.tensor_params):
        dens = float(tp["density"])
        if i == pj.base or dens >= 1:
            masks.append(None)
            scales.append(None)
            continue
        mask = torch.empty(numel, dtype=torch.bool)
        before = after = 0.0
        work_dtype = None
        for ci, r0 in enumerate(range(0, pj.rows, pj.chunk_rows)):
            r1 = min(pj.rows, r0 + pj.chunk_rows)
            b = pj.load_rows(pj.base, r0, r1)
            d = pj.load_rows(i, r0, r1).to(b.dtype) - b
            work = d if d.dtype in (torch.float32, torch.float64, torch.bfloat16) else d.float()
            work_dtype = work.dtype
            g = torch.Generator().manual_seed(((pj.seed + 7919 * i) * 1_000_003 + ci) % (1 << 63))
            keep = torch.bernoulli(torch.full(work.shape, dens, dtype=torch.float32), generator=g).to(torch.bool)
            mask[r0 * row_numel : r1 * row_numel] = keep.reshape(-1)
            if rescale:
                a = work.abs()
                before += float(a.sum(dtype=torch.float64))
                after += float(a[keep].sum(dtype=torch.float64))
            del b, d, work, keep
        masks.append(mask)
        scale = None
        if rescale and work_dtype is not None:
            bt, at = torch.tensor(before, dtype=work_dtype), torch.tensor(after, dtype=work_dtype)
            if not (bt < 1e-7 or at < 1e-7):
                scale = bt / at
        scales.append(scale)
    return {"keep": masks, "scale": scales}


def generalized_task_arithmetic(
    job: TensorJob, *, consensus: Literal["sum", "count"] | None, sparsify: Sparsify | None
) -> Any:
    import torch

    if job.base is None:
        raise SafeAdaptError(f"merge method needs base_model (tensor {job.name})")
    base = job.tensors[job.base]
    deltas, weights = [], []
    for i, x in enumerate(job.tensors):
        if i == job.base:
            continue
        tp = job.tensor_params[i]
        delta = x.to(base.dtype) - base
        keep = job.extras.get("keep")
        if keep is not None:  # chunked TIES: masks from ties_prepare, sliced to these rows
            if keep[i] is not None:
                m = keep[i]
                if job.rows is not None:
                    per = m.numel() // job.extras["rows"]
                    m = m[job.rows.start * per : job.rows.stop * per]
                scale = (job.extras.get("scale") or [None] * len(job.tensors))[i]
                work = delta if delta.dtype in (torch.float32, torch.float64, torch.bfloat16) else delta.float()
                work = work * m.reshape(delta.shape).to(work.dtype)
                if scale is not None:
                    work = work * scale
                delta = work.to(delta.dtype)
        elif sparsify is not None:
            delta = sparsify(delta, tp, job.seed + 7919 * i)
        deltas.append(delta)
        weights.append(tp["weight"])
    if not deltas:
        return base
    stacked = torch.stack(deltas, dim=0)
    w = torch.tensor(weights, dtype=stacked.dtype, device=stacked.device)
    while w.dim() < stacked.dim():
        w.unsqueeze_(-1)
    weighted = stacked * w
    if consensus is not None:
        mask = peft_merge_utils().calculate_majority_sign_mask(
            weighted, method="total" if consensus == "sum" else "frequency"
        )
        mixed = (weighted * mask).sum(dim=0)
        divisor = (w * mask).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed = weighted.sum(dim=0)
        divisor = w.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    if job.params["normalize"]:
        mixed /= divisor
    lam = job.params.get("lambda", 1.0)
    if lam != 1.0:
        mixed *= lam
    return (base + mixed).to(base.dtype)
