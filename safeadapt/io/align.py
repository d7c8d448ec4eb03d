"""Stream the same tensor from several checkpoints at once, matched by canonical (LLM-style) name,
so a VLM's language tower can be diffed against or grafted from a text-only LLM without loading
either model: `for name, (a, b) in iter_aligned([vlm, llm]): ...` (one tensor per model in memory)."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.names import Part, canonical_part, detect_layout, to_canonical
from safeadapt.io.tensors import TensorSource, open_tensors


def iter_aligned(refs: Sequence[str | os.PathLike], *, parts: Sequence[Part] = ("language",), strict: bool = True,
                 allow_pickle: bool = False, shared_rows: Callable[[str], bool] | None = None) -> Iterator[tuple[str, list[Any]]]:
    """Yield `(canonical_name, [tensor per model])` for tensors of the given towers present in all
    models, in the first model's order. With `strict`, a tensor missing from any model (or of a
    different shape) is an error naming it; otherwise such tensors are skipped. `shared_rows(name)`
    true: shapes that differ only in the first dimension (a VLM's embeddings with extra tokens)
    yield their shared leading rows instead."""
    sources: list[TensorSource] = []
    try:
        maps: list[dict[str, str]] = []
        for r in refs:
            src = open_tensors(r, allow_pickle=allow_pickle)
            sources.append(src)
            layout = detect_layout(src.keys())
            maps.append({to_canonical(n, layout): n for n in src.keys()})
        wanted = [[k for k in m if canonical_part(k) in parts] for m in maps]
        for i, keys in enumerate(wanted[1:], start=1):
            missing = set(wanted[0]) ^ set(keys)
            if missing and strict:
                k = sorted(missing)[0]
                where = sources[0].ref.ref if k not in maps[0] else sources[i].ref.ref
                raise SafeAdaptError(f"tensor {k} is missing from {where}")
        common = [k for k in wanted[0] if all(k in m for m in maps[1:])]
        for k in common:
            shapes = [src.info(m[k]).shape for src, m in zip(sources, maps)]
            if len(set(shapes)) > 1 and shared_rows is not None and len({s[1:] for s in shapes}) == 1 and shared_rows(k):
                n = min(s[0] for s in shapes)
                yield k, [src.get(m[k])[:n] for src, m in zip(sources, maps)]
                continue
            if len(set(shapes)) > 1:
                if strict:
                    raise SafeAdaptError(f"shape mismatch for tensor {k}: " + " vs ".join(str(list(s)) for s in shapes))
                continue
            yield k, [src.get(m[k]) for src, m in zip(sources, maps)]
    finally:
        for s in sources:
            s.close()
