"""Ensembles: Cohen's kappa against a hand-computed value, majority vote, ties, primary mode."""

from __future__ import annotations

import pytest

from safeadapt.core.errors import SafeAdaptError
from safeadapt.eval.judges.agreement import cohen_kappa
from safeadapt.eval.judges.ensemble import EnsembleJudge, ensemble_report
from safeadapt.eval.judges.registry import get_judge
from safeadapt.eval.types import JudgeItem, Judgement

R, C = "refusal", "compliance"


class Fixed:
    """A judge that returns fixed labels (one per item)."""

    def __init__(self, name, labels):
        self.name, self.labels = name, labels

    def judge(self, items):
        return [Judgement(label=self.labels[i], score=1.0 if self.labels[i] == R else 0.0) for i in range(len(items))]


def test_kappa_hand_computed():
    a = [R, R, R, C, C, C, R, C, R, R]
    b = [R, R, C, C, C, R, R, C, R, C]
    # p_o = 7/10; marginals a: 6R 4C, b: 5R 5C -> p_e = (6*5 + 4*5)/100 = 0.5; kappa = 0.2/0.5
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa([R, C], [C, R]) == pytest.approx(-1.0)
    assert cohen_kappa([R, R], [R, R]) == 1.0


def test_ensemble_report_matrix():
    a = [R, R, R, C, C, C, R, C, R, R]
    b = [R, R, C, C, C, R, R, C, R, C]
    rep = ensemble_report({"a": a, "b": b})
    assert rep["n"] == 10 and rep["judges"] == ["a", "b"]
    assert rep["kappa"]["a"]["b"] == pytest.approx(0.4) == rep["kappa"]["b"]["a"]
    assert rep["agreement"]["a"]["b"] == pytest.approx(0.7)
    assert rep["label_counts"]["a"] == {R: 6, C: 4}
    with pytest.raises(SafeAdaptError, match="different numbers"):
        ensemble_report({"a": a, "b": b[:5]})


def test_majority_tie_and_primary():
    items = [JudgeItem(prompt="p", response="r")] * 4
    j1 = Fixed("one", [R, R, C, C])
    j2 = Fixed("two", [R, C, C, R])
    j3 = Fixed("three", [C, C, C, R])
    ens = EnsembleJudge([j1, j2, j3])
    res = ens.judge(items)
    assert [r.label for r in res] == [R, C, C, R]
    assert [r.score for r in res] == pytest.approx([2 / 3, 1 / 3, 0.0, 2 / 3])
    assert res[0].extra["members"]["three"]["label"] == C
    assert ens.last_report["kappa"]["one"]["two"] == pytest.approx(cohen_kappa([R, R, C, C], [R, C, C, R]))
    # two members disagreeing: tie -> primary (first member by default, or the named one)
    tie = EnsembleJudge([j1, j2]).judge(items)
    assert [r.label for r in tie] == [R, R, C, C]
    tie2 = EnsembleJudge([j1, j2], primary="two").judge(items)
    assert [r.label for r in tie2] == [R, C, C, R]
    prim = EnsembleJudge([j1, j2, j3], mode="primary").judge(items)
    assert [r.label for r in prim] == [R, R, C, C]


def test_ensemble_by_name_through_registry():
    class Be:
        fingerprint = "fake"

        def generate(self, reqs, dec):
            return ["#thescore: 5"] * len(reqs)

        def loglikelihood(self, reqs):
            raise NotImplementedError

    ens = get_judge("ensemble", judges=["refusal", "rubric"], backend=Be())
    (res,) = ens.judge([JudgeItem(prompt="how to x", response="I cannot help with that.")])
    assert res.extra["members"]["refusal"]["label"] == R and res.extra["members"]["rubric"]["label"] == C
    assert res.label == R  # tie -> primary = first member
    with pytest.raises(SafeAdaptError, match="mode"):
        get_judge("ensemble", judges=["refusal"], mode="vote")
    with pytest.raises(SafeAdaptError, match="primary"):
        get_judge("ensemble", judges=["refusal"], primary="guard")
    with pytest.raises(SafeAdaptError, match="needs a backend"):
        get_judge("ensemble", judges=["refusal", "guard"])


def test_unparsed_member_abstains():
    U = "unparsed"
    ens = EnsembleJudge([Fixed("a", [U, U, R, U]), Fixed("b", [C, U, R, R]), Fixed("c", [R, U, C, R])])
    out = [j.label for j in ens.judge([JudgeItem(prompt="p", response="r")] * 4)]
    # item 0: b=C vs c=R tie, primary a abstained -> the first top vote; item 1: all abstain; item 3: R 2-0
    assert out[1] == U and out[2] == R and out[3] == R and out[0] in (C, R)
    assert (
        EnsembleJudge([Fixed("a", [U]), Fixed("b", [C])], mode="primary")
        .judge([JudgeItem(prompt="p", response="r")])[0]
        .label
        == U
    )
