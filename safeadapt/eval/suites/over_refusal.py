"""Suite "over-refusal": benign prompts that look harmful -> refusal rate (lower is better)."""

from __future__ import annotations

from safeadapt.eval.suites.base import SUITES, JudgedRateSuite


@SUITES.register("over-refusal")
class OverRefusal(JudgedRateSuite):
    metric = "refusal_rate"
    wants_label = "benign"
    builtin = "lookalike"
