"""The search's eval kind "world": a candidate is scored on the world.data stage's held-out eval
sets (`eval.data` is that stage's output) with the world's judge and short greedy answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.data.schema import Sample


def load(data: Path, suites: list[str]) -> dict[str, list[Sample]]:
    """{suite: samples} read from DATA/eval/<suite>.jsonl (one-line error naming a missing file)."""
    from safeadapt.world.data import load_eval

    out = {}
    for s in suites:
        f = data / "eval" / f"{s}.jsonl"
        if not f.is_file():
            raise SafeAdaptError(f"eval.data: {f} not found (expected the world.data stage's output)")
        out[s] = load_eval(data, s)
    return out


def backend(model_dir: Path, decoding: Any) -> Any:
    """The transformers backend on one thread (the world's models are tiny)."""
    from safeadapt.core.runtime import set_threads
    from safeadapt.eval.backends.hf import HFBackend

    set_threads(1)
    return HFBackend(str(model_dir), threads=1, max_batch=decoding.batch_size)


DECODING = {"max_new_tokens": 24, "temperature": 0.0, "batch_size": 64}
