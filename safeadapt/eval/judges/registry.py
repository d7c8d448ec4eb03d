"""Judge registry: `JUDGES` maps a name to a factory `(**kwargs) -> Judge`; `get_judge` imports the
built-in judge modules (so their `@JUDGES.register` lines run) and builds one by name."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from safeadapt.core.registry import Registry
from safeadapt.eval.types import Judge

JudgeFactory = Callable[..., Judge]

#: name -> factory (usually the judge class itself); one `@JUDGES.register("name")` line per judge
JUDGES: Registry[JudgeFactory] = Registry("judge")

_BUILTIN_MODULES = (
    "safeadapt.eval.judges.refusal",
    "safeadapt.eval.judges.rubric",
    "safeadapt.eval.judges.strongreject",
    "safeadapt.eval.judges.guard",
    "safeadapt.eval.judges.harmbench",
    "safeadapt.eval.judges.strongreject_ft",
    "safeadapt.eval.judges.ensemble",
)
_loaded = False


def load_builtin_judges() -> None:
    """Import every built-in judge module once so its registration runs."""
    global _loaded
    if _loaded:
        return
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a module not written yet must not break the others
            if e.name != mod:
                raise
    _loaded = True


def judge_names() -> list[str]:
    load_builtin_judges()
    return JUDGES.names()


def get_judge(name: str, **kwargs: Any) -> Judge:
    """Build the judge registered as `name` (unknown name -> one-line SafeAdaptError).

    LLM judges ("rubric", "strongreject", "guard", "harmbench", "strongreject-ft") need `backend=`
    (any eval Backend); `safeadapt.eval.judges.build.build_judge` also builds that backend."""
    load_builtin_judges()
    return JUDGES.get(name)(**kwargs)
