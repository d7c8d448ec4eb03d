"""Evaluation suites: a dataset, a way to query the model, and the metrics computed from judgements.
Registry: `safeadapt.eval.suites.base.SUITES`; `get_suite(name)` / `suite_names()` load the
built-ins ("text-safety", "jailbreak", "over-refusal", "mm-safety", "helpfulness")."""

from safeadapt.eval.suites.base import SUITES, JudgedRateSuite, Suite, SuiteContext, SuiteResult, get_suite, suite_names

__all__ = ["SUITES", "JudgedRateSuite", "Suite", "SuiteContext", "SuiteResult", "get_suite", "suite_names"]
