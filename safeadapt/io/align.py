"""Stream the same tensor from several checkpoints at once, matched by canonical (LLM-style) name,
so a VLM's language tower can be diffed against or grafted from a text-only LLM without loading
either model: `for name, (a, b) in iter_aligned([vlm, llm]): ...` (one tensor per model in memory)."""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterator, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.names import Part, canonical_part, detect_layout, to_canonical
from safeadapt.io.tensors import TensorSource, open_tensors


def _plan(sources: list[TensorSource], maps: list[dict[str, str]], parts: Sequence[Part], strict: bool,
          shared_rows: Callable[[str], bool] | None) -> list[tuple[str, int | None]]:
    """(canonical key, rows to read or None for the whole tensor) for every tensor to yield; every
    missing tensor and shape mismatch is found here, before any tensor data is read."""
    wanted = [[k for k in m if canonical_part(k) in parts] for m in maps]
    for i, keys in enumerate(wanted[1:], start=1):
        missing = set(wanted[0]) ^ set(keys)
        if missing and strict:
            k = sorted(missing)[0]
            where = sources[0].ref.ref if k not in maps[0] else sources[i].ref.ref
            raise SafeAdaptError(f"tensor {k} is missing from {where}")
    plan: list[tuple[str, int | None]] = []
    for k in (k for k in wanted[0] if all(k in m for m in maps[1:])):
        shapes = [src.info(m[k]).shape for src, m in zip(sources, maps)]
        if len(set(shapes)) > 1 and shared_rows is not None and len({s[1:] for s in shapes}) == 1 and shared_rows(k):
            plan.append((k, min(s[0] for s in shapes)))
        elif len(set(shapes)) > 1:
            if strict:
                raise SafeAdaptError(f"shape mismatch for tensor {k}: " + " vs ".join(str(list(s)) for s in shapes))
        else:
            plan.append((k, None))
    return plan


def _open(refs: Sequence[str | os.PathLike], allow_pickle: bool, sources: list[TensorSource]) -> list[dict[str, str]]:
    maps: list[dict[str, str]] = []
    for r in refs:
        src = open_tensors(r, allow_pickle=allow_pickle)
        sources.append(src)
        layout = detect_layout(src.keys())
        maps.append({to_canonical(n, layout): n for n in src.keys()})
    return maps


def iter_aligned(
    refs: Sequence[str | os.PathLike],
    *,
    parts: Sequence[Part] = ("language",),
    strict: bool = True,
    allow_pickle: bool = False,
    shared_rows: Callable[[str], bool] | None = None,
) -> Iterator[tuple[str, list[Any]]]:
    """Yield `(canonical_name, [tensor per model])` for tensors of the given towers present in all
    models, in the first model's order. With `strict`, a tensor missing from any model (or of a
    different shape) is an error naming it, raised before any tensor is read; otherwise such tensors
    are skipped. `shared_rows(name)` true: shapes that differ only in the first dimension (a VLM's
    embeddings with extra tokens) yield their shared leading rows instead."""
    sources: list[TensorSource] = []
    try:
        maps = _open(refs, allow_pickle, sources)
        for k, rows in _plan(sources, maps, parts, strict, shared_rows):
            ts = [src.get(m[k]) for src, m in zip(sources, maps)]
            yield k, ts if rows is None else [t[:rows] for t in ts]
    finally:
        for s in sources:
            s.close()


def iter_aligned_blocks(
    refs: Sequence[str | os.PathLike],
    *,
    parts: Sequence[Part] = ("language",),
    strict: bool = True,
    allow_pickle: bool = False,
    shared_rows: Callable[[str], bool] | None = None,
    block_elems: int = 1 << 22,
    as_numpy: bool = False,
) -> Iterator[tuple[str, int, int, int, list[Any]]]:
    """As `iter_aligned`, but large tensors come in row blocks of about `block_elems` elements per
    model, read with positioned reads where the source allows: yields `(name, r0, r1, rows, [block
    per model])`, a tensor's blocks consecutively, so memory stays near one block per model.
    `as_numpy`: numpy arrays (safetensors are then read without importing torch; bf16 -> float32)."""
    sources: list[TensorSource] = []
    try:
        maps = _open(refs, allow_pickle, sources)
        for k, rows in _plan(sources, maps, parts, strict, shared_rows):
            shape = sources[0].info(maps[0][k]).shape
            n = shape[0] if rows is None and shape else (rows or 1)
            per_row = max(1, math.prod(shape[1:])) if shape else 1
            step = max(1, block_elems // per_row) if shape else 1
            for r0 in range(0, n, step):
                r1 = min(n, r0 + step)
                yield k, r0, r1, n, [_block(src, m[k], r0, r1, bool(shape), as_numpy) for src, m in zip(sources, maps)]
    finally:
        for s in sources:
            s.close()


def _block(src: TensorSource, name: str, r0: int, r1: int, has_rows: bool, as_numpy: bool) -> Any:
    """Rows r0:r1 of one tensor (the whole tensor when it is a scalar)."""
    if as_numpy and hasattr(src, "get_rows_numpy"):
        return src.get_rows_numpy(name, r0, r1)
    t = (src.get_rows(name, r0, r1) if src.can_read_rows else src.get(name)[r0:r1]) if has_rows else src.get(name)
    if as_numpy:
        import torch

        narrow = t.dtype == torch.bfloat16 or (t.dtype.is_floating_point and t.dtype.itemsize == 1)
        return (t.float() if narrow else t).numpy()
    return t
