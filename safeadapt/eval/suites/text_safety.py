"""Suite "text-safety": harmful text requests -> attack success rate (share not refused)."""

from __future__ import annotations

from safeadapt.eval.suites.base import SUITES, JudgedRateSuite


@SUITES.register("text-safety")
class TextSafety(JudgedRateSuite):
    metric = "asr"
    wants_label = "harmful"
    builtin = "harmful"
