"""Judge registry: `JUDGES` maps a name to a factory `(**kwargs) -> Judge` with what it needs as
metadata; every module of this package is loaded on the first lookup, so a new judge is one file."""

from __future__ import annotations

from typing import Any, Callable

from safeadapt.core.registry import Registry
from safeadapt.eval.types import Judge

JudgeFactory = Callable[..., Judge]

#: modules of this package that register no judge and are not imported on lookup (the CLI)
NOT_JUDGES = frozenset({"commands"})

#: name -> factory (usually the judge class itself): `@JUDGES.register("name", **needs)` with
#: `needs_backend=True` for an LLM judge (built with `backend=`), its `default_max_new_tokens`
#: (generation budget of its verdicts) and `takes_threshold=False` when it has no score cut
JUDGES: Registry[JudgeFactory] = Registry("judge", builtins="safeadapt.eval.judges", skip=NOT_JUDGES.__contains__)


def judge_names() -> list[str]:
    return JUDGES.names()


def judge_needs(name: str) -> dict[str, Any]:
    """What judge `name` declares (in its register line, or as class attributes, as `LLMJudge` does):
    needs_backend (bool), default_max_new_tokens (int | None), takes_threshold (bool)."""
    factory = JUDGES.get(name)
    return {"needs_backend": bool(getattr(factory, "needs_backend", False)),
            "default_max_new_tokens": getattr(factory, "default_max_new_tokens", None),
            "takes_threshold": bool(getattr(factory, "takes_threshold", True))}


def llm_judges() -> list[str]:
    """The judges that need a generation backend (an LLM)."""
    return [n for n in judge_names() if judge_needs(n)["needs_backend"]]


def get_judge(name: str, **kwargs: Any) -> Judge:
    """Build the judge registered as `name` (unknown name -> one-line SafeAdaptError).

    LLM judges (`llm_judges()`: "rubric", "strongreject", "guard", "harmbench", "strongreject-ft") need
    `backend=` (any eval Backend); `safeadapt.eval.judges.build.build_judge` also builds that backend."""
    return JUDGES.get(name)(**kwargs)
