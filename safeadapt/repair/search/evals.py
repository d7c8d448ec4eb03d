"""Search eval kinds besides the built-in "suites": a plugin registers how its own data, judge,
decoding and backend score a candidate (`@SEARCH_EVALS.register("world")` on an `EvalKind`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.registry import Registry


@dataclass(frozen=True)
class EvalKind:
    """`load(data_dir, suites) -> {suite: samples}` reads the kind's eval data (`eval.data`, which
    the kind requires when `needs_data`); `judge` names the judge; `decoding` are default decoding
    fields; `backend(model_dir, decoding)` builds the generation backend (None: `eval.backend`)."""

    load: Callable[[Path, list[str]], dict[str, list[Any]]]
    judge: str
    decoding: dict[str, Any] = field(default_factory=dict)
    backend: Callable[[Path, Any], Any] | None = None
    needs_data: bool = True


#: kind -> EvalKind; "suites" (safeadapt eval's suites and judges) is built in and not listed here
SEARCH_EVALS: Registry[EvalKind] = Registry("search eval kind")
