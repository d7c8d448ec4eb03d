"""Framework-level judging shared by the eval suites and `safeadapt judge`: an empty or
whitespace-only response is labelled `no_answer` (`extra["non_answer_kind"] = "empty"`) without
asking any judge; every other item goes to the judge, whose count of judgements is checked."""

from __future__ import annotations

import math
from typing import Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.eval.types import Judge, JudgeItem, Judgement


def empty_judgement() -> Judgement:
    return Judgement(label="no_answer", score=math.nan, reason="empty response",
                     extra={"non_answer_kind": "empty"})


def run_judge(judge: Judge, items: Sequence[JudgeItem]) -> list[Judgement]:
    """Judge `items` in order; empty responses become `no_answer` whatever the judge."""
    todo = [i for i, it in enumerate(items) if (it.response or "").strip()]
    out: list[Judgement | None] = [None] * len(items)
    if todo:
        res = judge.judge([items[i] for i in todo])
        if len(res) != len(todo):
            raise SafeAdaptError(
                f"judge {getattr(judge, 'name', '?')!r} returned {len(res)} judgements for {len(todo)} items"
            )
        for i, j in zip(todo, res):
            out[i] = j
    return [j if j is not None else empty_judgement() for j in out]
