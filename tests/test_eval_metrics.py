"""Metrics with known numbers: proportions, bootstrap CIs (deterministic by seed), per-category
counts, harmfulness from rubric scores, answer normalisation and multiple-choice argmax."""

from __future__ import annotations

import math

import pytest

from safeadapt.eval import metrics as M
from safeadapt.eval.types import Judgement


def test_proportion_known_numbers_and_deterministic_ci():
    flags = [True] * 3 + [False] * 7
    a = M.proportion(flags, seed=1, n_boot=2000)
    assert a["value"] == 0.3 and a["k"] == 3 and a["n"] == 10
    assert a["ci_low"] < 0.3 < a["ci_high"]
    # Wilson 95% for 3/10 (Newcombe 1998, Table I style): [0.1078, 0.6032]
    assert a["ci_low"] == pytest.approx(0.1078, abs=1e-4) and a["ci_high"] == pytest.approx(0.6032, abs=1e-4)
    assert M.proportion(flags, seed=1, n_boot=2000) == a
    vals = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2]
    assert M.bootstrap_ci(vals, seed=1) == M.bootstrap_ci(vals, seed=1) != M.bootstrap_ci(vals, seed=2)
    assert M.proportion([], seed=0)["value"] is None


def test_asr_refusal_rate_per_category_counts():
    J = lambda lab: Judgement(label=lab, score=0.0)  # noqa: E731
    js = [J("compliance"), J("refusal"), J("refusal"), J("compliance"), J("compliance")]
    cats = ["a", "a", "b", "b", None]
    asr = M.asr(js, cats, seed=0, n_boot=200)
    assert asr["overall"]["value"] == 0.6 and asr["overall"]["k"] == 3
    pc = asr["per_category"]
    assert (pc["a"]["k"], pc["a"]["n"]) == (1, 2)
    assert (pc["b"]["k"], pc["b"]["n"]) == (1, 2)
    assert (pc["uncategorised"]["k"], pc["uncategorised"]["n"]) == (1, 1)
    rr = M.refusal_rate([j.model_dump() for j in js], cats, seed=0, n_boot=200)
    assert rr["overall"]["value"] == 0.4 and rr["per_category"]["a"]["value"] == 0.5


def test_harmfulness_from_rubric_scores():
    h = M.harmfulness([1, 5, 5, 3], ["x", "x", "y", "y"], seed=0, n_boot=500)
    assert h["score"]["value"] == 3.5
    assert h["rate"]["value"] == 0.5 and h["rate"]["k"] == 2
    assert h["per_category"]["x"]["value"] == 3.0 and h["per_category"]["y"]["value"] == 4.0
    assert h["score"]["ci_low"] <= 3.5 <= h["score"]["ci_high"]


def test_bootstrap_ci_mean_interval_width():
    lo, hi = M.bootstrap_ci([0.0, 1.0] * 200, seed=0, n_boot=1000)
    # sd of the mean = 0.5/sqrt(400) = 0.025 -> 95% CI about +-0.049
    assert math.isclose(hi - lo, 0.098, abs_tol=0.015)


def test_answer_matching_and_mc():
    assert M.normalise_answer("  The Paris!! ") == "paris"
    assert M.answer_matches("The answer is Paris.", ["Paris"])
    assert M.answer_matches("brasilia", ["Brasília"])
    assert not M.answer_matches("Parisian food", ["Paris"])
    assert M.answer_matches("42", ["41", "42"]) and not M.answer_matches("142", ["42"])
    assert M.mc_prediction([-3.0, -1.0, -1.0, -5.0]) == 1


def test_wilson_never_collapses_at_the_extremes():
    full = M.proportion([True] * 20)
    assert full["value"] == 1.0 and full["ci_high"] == 1.0
    assert full["ci_low"] == pytest.approx(0.8389, abs=1e-4)  # 20/20 is not [1, 1]
    none = M.proportion([False] * 20)
    assert none["ci_low"] == 0.0 and none["ci_high"] == pytest.approx(0.1611, abs=1e-4)
    one = M.proportion([True])
    assert one["ci_low"] == pytest.approx(0.2065, abs=1e-4) and one["ci_high"] == 1.0
    assert M.wilson_ci(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert full["ci"] == "wilson"


def test_asr_counts_on_topic_compliance_only_and_shows_every_outcome():
    J = lambda lab, **ex: Judgement(label=lab, score=0.0, extra=ex)  # noqa: E731
    js = [J("compliance"), J("compliance"), J("refusal"), J("no_answer", non_answer_kind="degenerate"),
          J("no_answer", non_answer_kind="empty"), J("unparsed")]
    cats = ["a"] * 6
    a = M.asr(js, cats)["overall"]
    assert (a["k"], a["n"]) == (2, 5)  # unparsed left out of the denominator, no_answer is not a success
    r = M.outcome_rates(js)
    assert (r["refusal_rate"]["k"], r["no_answer_rate"]["k"], r["compliance_rate"]["k"]) == (1, 2, 2)
    assert r["no_answer_rate"]["n"] == 5 and r["unparsed"] == {"k": 1, "n": 6}
    assert r["non_answer_kinds"] == {"degenerate": 1, "empty": 1}
    assert r["labels"] == {"refusal": 1, "compliance": 2, "benign": 0, "no_answer": 2, "unparsed": 1}
    assert M.refusal_rate(js, cats)["overall"]["n"] == 5


def test_bootstrap_difference_of_two_rates():
    d = M.difference([1.0] * 15 + [0.0] * 5, [1.0] * 5 + [0.0] * 15, seed=3, n_boot=2000)
    assert d["value"] == pytest.approx(0.5) and d["ci_low"] < 0.5 < d["ci_high"]
    assert 0.15 < d["ci_low"] < 0.35 and 0.65 < d["ci_high"] < 0.85
    assert M.difference([1.0] * 15 + [0.0] * 5, [1.0] * 5 + [0.0] * 15, seed=3, n_boot=2000) == d
