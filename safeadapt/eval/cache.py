"""Generate once, grade many: an on-disk cache of generations and log-likelihoods keyed by (model
fingerprint, sample id, prompt hash, decoding config), stored with JsonlCheckpoint (one fsynced
append per batch), so a killed run resumes with no lost or duplicated records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.jsonl import JsonlCheckpoint
from safeadapt.core.provenance import stable_hash
from safeadapt.eval.backends.common import image_digest
from safeadapt.eval.types import Backend, DecodingConfig, GenRequest, LoglikRequest

#: decoding fields that change outputs (batch size does not, by design of the backends)
_DECODING_KEYS = ("max_new_tokens", "temperature", "top_p", "seed")


def decoding_key(decoding: DecodingConfig) -> dict[str, Any]:
    d = decoding.model_dump()
    out = {k: d[k] for k in _DECODING_KEYS}
    if decoding.temperature <= 0:  # greedy: seed and top_p are irrelevant
        out.pop("seed")
        out.pop("top_p")
    return out


def prompt_hash(messages: list[dict[str, Any]], images: list[Any], extra: str = "") -> str:
    return stable_hash({"messages": messages, "images": [image_digest(i) for i in images], "extra": extra})


class GenerationCache:
    """JSONL-backed cache. Records: {"key", "kind": "gen"|"ll", "sample_key", "output", ...}."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.store = JsonlCheckpoint(self.path, key_field="key")

    def gen_key(self, fingerprint: str, req: GenRequest, decoding: DecodingConfig) -> str:
        return stable_hash(["gen", fingerprint, req.key, prompt_hash(req.messages, req.images), decoding_key(decoding)])

    def ll_key(self, fingerprint: str, req: LoglikRequest) -> str:
        return stable_hash(["ll", fingerprint, req.key, prompt_hash(req.messages, req.images, req.continuation)])

    def __len__(self) -> int:
        return len(self.store)


def _batches(idx: list[int], size: int) -> list[list[int]]:
    return [idx[i : i + size] for i in range(0, len(idx), size)]


def cached_generate(
    backend: Backend,
    requests: list[GenRequest],
    decoding: DecodingConfig,
    cache: GenerationCache | None,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Responses for `requests`; those in `cache` are reused, the rest generated in length-sorted
    batches of decoding.batch_size, each batch appended (fsynced) before the next starts."""
    fp = backend.fingerprint
    keys = [cache.gen_key(fp, r, decoding) if cache is not None else "" for r in requests]
    out: list[str | None] = [None] * len(requests)
    todo: list[int] = []
    for i, k in enumerate(keys):
        rec = cache.store.get(k) if cache is not None else None
        if rec is not None:
            out[i] = rec["output"]
        else:
            todo.append(i)
    if on_progress and len(requests) - len(todo):
        on_progress(len(requests) - len(todo))
    # one global length sort so batches are well packed; ties keep input order
    todo.sort(
        key=lambda i: (
            -(sum(len(str(m.get("content", ""))) for m in requests[i].messages) + 1000 * len(requests[i].images)),
            i,
        )
    )
    seen: dict[str, int] = {}
    for batch in _batches(todo, max(1, decoding.batch_size)):
        # identical keys inside one run (duplicate samples) are generated once
        uniq = [i for i in batch if keys[i] not in seen or cache is None]
        for i in uniq:
            seen[keys[i]] = i
        resp = backend.generate([requests[i] for i in uniq], decoding) if uniq else []
        recs = []
        for i, r in zip(uniq, resp):
            out[i] = r
            recs.append({"key": keys[i], "kind": "gen", "sample_key": requests[i].key, "output": r, "fingerprint": fp})
        for i in batch:
            if out[i] is None:
                out[i] = out[seen[keys[i]]]
        if cache is not None:
            cache.store.extend(recs)
        if on_progress:
            on_progress(len(batch))
    return [o if o is not None else "" for o in out]


def cached_loglikelihood(
    backend: Backend,
    requests: list[LoglikRequest],
    cache: GenerationCache | None,
    *,
    batch_size: int = 16,
    on_progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Log-likelihoods for `requests`, cached like generations."""
    fp = backend.fingerprint
    keys = [cache.ll_key(fp, r) if cache is not None else "" for r in requests]
    out: list[float | None] = [None] * len(requests)
    todo = []
    for i, k in enumerate(keys):
        rec = cache.store.get(k) if cache is not None else None
        if rec is not None:
            out[i] = float(rec["output"])
        else:
            todo.append(i)
    if on_progress and len(requests) - len(todo):
        on_progress(len(requests) - len(todo))
    for batch in _batches(todo, max(1, batch_size)):
        vals = backend.loglikelihood([requests[i] for i in batch])
        recs = []
        for i, v in zip(batch, vals):
            out[i] = float(v)
            recs.append(
                {"key": keys[i], "kind": "ll", "sample_key": requests[i].key, "output": float(v), "fingerprint": fp}
            )
        if cache is not None:
            cache.store.extend(recs)
        if on_progress:
            on_progress(len(batch))
    return [float(o) for o in out]  # type: ignore[arg-type]
