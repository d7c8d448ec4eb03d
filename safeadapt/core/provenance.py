"""Provenance attached to every output: tool and library versions, input hashes, config, timings."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Any

_LIBS = ("torch", "transformers", "safetensors", "accelerate", "peft", "trl", "datasets", "tokenizers")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("safeadapt",) + _LIBS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def hash_path(path: str | os.PathLike, *, max_bytes: int | None = None) -> str:
    """Content hash of a file or of a directory's files (names + bytes), sorted.

    With `max_bytes`, large files contribute (size, first and last `max_bytes`) only: a fast
    fingerprint for multi-GB checkpoints."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
    for f in files:
        rel = f.name if p.is_file() else str(f.relative_to(p))
        h.update(rel.encode())
        size = f.stat().st_size
        h.update(str(size).encode())
        with open(f, "rb") as fh:
            if max_bytes is None or size <= 2 * max_bytes:
                while True:
                    b = fh.read(1 << 22)
                    if not b:
                        break
                    h.update(b)
            else:
                h.update(fh.read(max_bytes))
                fh.seek(size - max_bytes)
                h.update(fh.read(max_bytes))
    return h.hexdigest()


def omit_none(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    """`d` without those of `keys` whose value is None: a field added later and left unset is not
    written, so the hashes of the objects written before it stay the same."""
    for k in keys:
        if k in d and d[k] is None:
            del d[k]
    return d


def stable_hash(obj: Any) -> str:
    """Hash of a JSON-serialisable object with sorted keys."""
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def section(self, name: str) -> "_Section":
        return _Section(self, name)


class _Section:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> "_Section":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.timings[self.name] = self.timer.timings.get(self.name, 0.0) + time.perf_counter() - self.t0


def provenance(
    config: Any = None, inputs: dict[str, str] | None = None, timings: dict[str, float] | None = None
) -> dict[str, Any]:
    return {
        "tool": "safeadapt",
        "versions": versions(),
        "created_unix": time.time(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "config": config,
        "inputs": inputs or {},
        "timings_s": timings or {},
    }
