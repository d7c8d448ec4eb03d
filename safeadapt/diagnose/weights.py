"""Weight-space diagnosis of two or three checkpoints, streamed tensor by tensor through
`safeadapt.io` (never two full models in memory): relative change, delta norm and sign agreement per
tensor, layer and module type; with three models A, B, C the cosine of the task vectors B - A and
C - B; with `spectra`, randomised-SVD spectra of the 2-D deltas under a time budget."""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.diagnose.modules import MODULE_ORDER, module_of

ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@dataclass
class _Sums:
    """Running sums for one (pair, layer, module) group."""

    sq_a: float = 0.0
    sq_d: float = 0.0
    same_sign: float = 0.0
    n: int = 0
    dot_tv: float = 0.0  # cross records only: <tau1, tau2>, ||tau1||^2, ||tau2||^2, sign agreement
    sq_t1: float = 0.0
    sq_t2: float = 0.0
    agree_tv: float = 0.0
    both_tv: float = 0.0


def _sign_products(x: Any, y: Any) -> tuple[float, float]:
    """(#elements where both are non-zero, #those with the same sign), from sign(x) * sign(y)."""
    import numpy as np

    s = np.sign(x)
    s *= np.sign(y)
    both = float(np.count_nonzero(s))
    return both, (both + float(s.sum(dtype=np.float64))) / 2


def _sq(x: Any) -> float:
    import numpy as np

    return float(np.linalg.norm(x.reshape(-1))) ** 2


def pair_stats(a: Any, b: Any) -> dict[str, float]:
    """Sums for A -> B of one tensor (float32 numpy inputs): ||A||^2, ||B - A||^2, #elements whose
    sign does not flip (a zero on either side counts as kept)."""
    both, same = _sign_products(a, b)
    return {"sq_a": _sq(a), "sq_d": _sq(b - a), "same_sign": a.size - (both - same), "n": a.size}


def cross_stats(t1: Any, t2: Any) -> dict[str, float]:
    """Sums for the cosine and sign agreement of two task vectors of one tensor."""
    import numpy as np

    both, agree = _sign_products(t1, t2)
    return {"dot_tv": float(np.dot(t1.reshape(-1), t2.reshape(-1))),
            "sq_t1": _sq(t1), "sq_t2": _sq(t2), "agree_tv": agree, "both_tv": both}


def spectrum(delta: Any, k: int, seed: int = 0) -> dict[str, Any]:
    """Top-k singular values of a 2-D delta by `torch.svd_lowrank` (q = k + 4, 2 power iterations,
    so the cost is bounded by O(rows x cols x q)), the energy share of the top-k directions and the
    stable rank ||D||_F^2 / s_1^2 (an effective rank that needs only s_1)."""
    import torch

    d = torch.as_tensor(delta).float()
    fro2 = float(torch.linalg.vector_norm(d) ** 2)
    q = min(k + 4, *d.shape)
    torch.manual_seed(seed)
    _, s, _ = torch.svd_lowrank(d, q=q, niter=2)
    s = s[:k].double()
    top = [float(x) for x in s]
    energy = float((s ** 2).sum()) / fro2 if fro2 > 0 else 0.0
    return {"top_singular_values": top, "energy_topk": min(energy, 1.0),
            "stable_rank": fro2 / top[0] ** 2 if top and top[0] > 0 else 0.0}


def _arch(ref: str, allow_pickle: bool) -> tuple[dict[str, Any] | None, bool]:
    """(the language model's architecture fields, is-a-VLM) from a checkpoint's config, if it has one."""
    from safeadapt.io.models import is_vlm_config, read_config_dict
    from safeadapt.io.names import text_config
    from safeadapt.io.resolve import resolve_model_ref

    mref = resolve_model_ref(ref, allow_pickle=allow_pickle)
    cfg = read_config_dict(mref)
    if cfg is None:
        return None, False
    tc = text_config(cfg)
    return {k: tc.get(k) for k in ARCH_KEYS if tc.get(k) is not None}, is_vlm_config(cfg)


def check_architectures(refs: Sequence[str], allow_pickle: bool = False) -> bool:
    """One-line error when the language towers' configs disagree; returns True when every model is a VLM."""
    archs = [_arch(str(r), allow_pickle) for r in refs]
    known = [(r, a) for r, (a, _) in zip(refs, archs) if a]
    for r, a in known[1:]:
        r0, a0 = known[0]
        bad = [k for k in ARCH_KEYS if k in a and k in a0 and a[k] != a0[k]]
        if bad:
            k = bad[0]
            raise SafeAdaptError(f"architecture mismatch: {k} is {a0[k]} in {r0} but {a[k]} in {r}")
    return all(v for _, v in archs)


def _embedding_like(key: str) -> bool:
    return module_of(key)[1] in ("embed", "head")


def diagnose_weights(refs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None, *, spectra: bool = False,
                     spectra_k: int = 8, spectra_budget_s: float = 120.0, allow_pickle: bool = False,
                     block_elems: int = 1 << 22) -> dict[str, Any]:
    """Stream 2 or 3 checkpoints and return the diagnosis dict written as weights.json (see module
    doc); large tensors are read in row blocks of about `block_elems` elements per model."""
    import numpy as np

    from safeadapt.core.runtime import track
    from safeadapt.io.align import iter_aligned_blocks

    refs = [str(r) for r in refs]
    if len(refs) not in (2, 3):
        raise SafeAdaptError(f"weight diagnosis takes 2 or 3 models, got {len(refs)}")
    labels = list(labels) if labels else ["A", "B", "C"][: len(refs)]
    if len(labels) != len(refs) or len(set(labels)) != len(labels):
        raise SafeAdaptError(f"--labels: give {len(refs)} distinct labels (got {', '.join(labels)})")
    all_vlm = check_architectures(refs, allow_pickle)
    parts = ("language", "vision", "projector") if all_vlm else ("language",)
    pairs = [(0, 1)] + ([(1, 2), (0, 2)] if len(refs) == 3 else [])
    pname = {p: f"{labels[p[0]]}->{labels[p[1]]}" for p in pairs}
    groups: dict[tuple[str, int | None, str], _Sums] = defaultdict(_Sums)
    per_tensor: list[dict[str, Any]] = []
    spec_recs: list[dict[str, Any]] = []
    spec_time, spec_skipped, skipped_nonfloat = 0.0, 0, []
    t0 = time.perf_counter()
    stream = iter_aligned_blocks(refs, parts=parts, strict=True, allow_pickle=allow_pickle, shared_rows=_embedding_like,
                                 block_elems=block_elems, as_numpy=True)
    sums: dict[Any, _Sums] = {}
    bufs: dict[Any, list[Any]] = {}
    for key, r0, r1, n, ts in track(stream, "diagnosing weights"):
        if r0 == 0:
            sums = {p: _Sums() for p in pairs}
            bufs = {p: [] for p in pairs[:2]}
            want_spec = spectra and ts[0].ndim == 2 and min(n, ts[0].shape[1]) > 1
        if not all(np.issubdtype(t.dtype, np.floating) for t in ts):
            if r1 == n:
                skipped_nonfloat.append(key)
            continue
        f = [t.astype(np.float32, copy=False) for t in ts]
        del ts
        for p in pairs:
            st = pair_stats(f[p[0]], f[p[1]])
            for k, v in st.items():
                setattr(sums[p], k, getattr(sums[p], k) + v)
        if len(f) == 3:
            t1, t2 = f[1] - f[0], f[2] - f[1]
            for k, v in cross_stats(t1, t2).items():
                setattr(sums[(0, 2)], k, getattr(sums[(0, 2)], k) + v)
            del t1, t2
        if want_spec:
            for p in pairs[:2]:
                bufs[p].append(f[p[1]] - f[p[0]])
        del f
        if r1 < n:
            continue
        layer, module = module_of(key)
        rec: dict[str, Any] = {"tensor": key, "layer": layer, "module": module, "rows": n}
        for p, sm in sums.items():
            g = groups[(pname[p], layer, module)]
            for k in ("sq_a", "sq_d", "same_sign", "n", "dot_tv", "sq_t1", "sq_t2", "agree_tv", "both_tv"):
                setattr(g, k, getattr(g, k) + getattr(sm, k))
            rec[pname[p]] = _ratios(sm.sq_a, sm.sq_d, sm.same_sign, sm.n)
        if len(refs) == 3:
            rec["cos_tv"] = _cos(sums[(0, 2)].dot_tv, sums[(0, 2)].sq_t1, sums[(0, 2)].sq_t2)
        if want_spec:
            for p in pairs[:2]:
                if spec_time > spectra_budget_s:
                    spec_skipped += 1
                    continue
                s0 = time.perf_counter()
                sp = spectrum(np.concatenate(bufs[p]), spectra_k)
                dt = time.perf_counter() - s0
                spec_time += dt
                spec_recs.append(
                    {"pair": pname[p], "tensor": key, "layer": layer, "module": module, **sp, "seconds": dt}
                )
        bufs = {}
        per_tensor.append(rec)
    if not per_tensor:
        raise SafeAdaptError(f"no tensors in common between {', '.join(refs)}")
    per_layer = []
    for (pair, layer, module), g in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        r: dict[str, Any] = {"pair": pair, "layer": layer, "module": module,
                             **_ratios(g.sq_a, g.sq_d, g.same_sign, g.n), "n_params": g.n}
        if g.both_tv or g.sq_t1 or g.sq_t2:
            r["cos_tv"] = _cos(g.dot_tv, g.sq_t1, g.sq_t2)
            r["sign_agree_tv"] = g.agree_tv / g.both_tv if g.both_tv else None
        per_layer.append(r)
    layers = _totals(groups, lambda layer, module: layer is not None and module not in ("vision", "projector"))
    return {
        "models": dict(zip(labels, refs)),
        "labels": labels,
        "pairs": [pname[p] for p in pairs],
        "parts": list(parts),
        "per_layer": per_layer,
        "layers": layers,
        "per_tensor": per_tensor,
        "spectra": {
            "enabled": spectra,
            "k": spectra_k,
            "budget_s": spectra_budget_s,
            "seconds": spec_time,
            "skipped_over_budget": spec_skipped,
            "records": spec_recs,
        }
        if spectra
        else {"enabled": False},
        "skipped_non_float": skipped_nonfloat,
        "seconds": time.perf_counter() - t0,
        "notes": {
            "rel_change": "||B - A|| / ||A|| over the group's tensors (Frobenius)",
            "sign_agree": "share of elements whose sign does not flip from A to B (a zero on either side counts as "
                          "kept)",
            "cos_tv": "on A->C records of 3-model runs: cosine of tau1 = B - A and tau2 = C - B",
            "sign_agree_tv": "share of elements, non-zero in both, where tau1 and tau2 agree in sign",
            "layer": "decoder layer index; null for embeddings, head, final norm, vision tower, projector",
            "embeddings": "rows beyond the smaller vocabulary (e.g. a VLM's <image> token) are not compared",
        },
    }


def _ratios(sq_a: float, sq_d: float, same: float, n: int) -> dict[str, float | None]:
    return {"rel_change": math.sqrt(sq_d) / math.sqrt(sq_a) if sq_a > 0 else (0.0 if sq_d == 0 else math.inf),
            "delta_norm": math.sqrt(sq_d), "base_norm": math.sqrt(sq_a), "sign_agree": same / n if n else None}


def _cos(dot: float, s1: float, s2: float) -> float | None:
    return dot / math.sqrt(s1 * s2) if s1 > 0 and s2 > 0 else None


def _order(key: tuple[str, int | None, str]) -> tuple[str, int, int]:
    pair, layer, module = key
    return pair, -1 if layer is None else layer, MODULE_ORDER.index(module) if module in MODULE_ORDER else 99


def _totals(groups: dict[tuple[str, int | None, str], _Sums], keep: Any) -> list[dict[str, Any]]:
    """Per (pair, layer) totals over the layer's language modules (energy share = the layer's
    share of the pair's squared delta over all decoder layers)."""
    acc: dict[tuple[str, int], _Sums] = defaultdict(_Sums)
    for (pair, layer, module), g in groups.items():
        if keep(layer, module):
            a = acc[(pair, layer)]
            for k in ("sq_a", "sq_d", "same_sign", "n", "dot_tv", "sq_t1", "sq_t2"):
                setattr(a, k, getattr(a, k) + getattr(g, k))
    tot = defaultdict(float)
    for (pair, _), a in acc.items():
        tot[pair] += a.sq_d
    out = []
    for (pair, layer), a in sorted(acc.items()):
        r: dict[str, Any] = {"pair": pair, "layer": layer, **_ratios(a.sq_a, a.sq_d, a.same_sign, a.n),
                             "energy_share": a.sq_d / tot[pair] if tot[pair] > 0 else 0.0}
        if a.sq_t1 or a.sq_t2:
            r["cos_tv"] = _cos(a.dot_tv, a.sq_t1, a.sq_t2)
        out.append(r)
    return out
