"""Built-in suites: sizes, taxonomy coverage, checkable answers, and disjoint deterministic splits."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from safeadapt.core.errors import SafeAdaptError
from safeadapt.data.builtin import builtin_names, load_builtin
from safeadapt.data.builtin_safety import CATEGORIES, LOOKALIKE_TYPES

SUITES = ["harmful", "lookalike", "helpfulness-mc", "helpfulness-qa"]
EXPECTED = {  # (train, test) at seed 0; a change in templates must update these on purpose
    "harmful": (135, 144),
    "lookalike": (103, 103),
    "helpfulness-mc": (73, 75),
    "helpfulness-qa": (92, 92),
}


def test_names_and_sizes() -> None:
    assert set(SUITES) <= set(builtin_names())
    for name, (n_train, n_test) in EXPECTED.items():
        assert (len(load_builtin(name, "train")), len(load_builtin(name, "test"))) == (n_train, n_test), name
        assert len(load_builtin(name, "all")) == n_train + n_test


@pytest.mark.parametrize("name", SUITES)
def test_splits_disjoint_and_deterministic(name: str) -> None:
    for seed in (0, 1):
        train, test = load_builtin(name, "train", seed), load_builtin(name, "test", seed)
        assert not {s.id for s in train} & {s.id for s in test}
        assert not {s.prompt for s in train} & {s.prompt for s in test}
        assert all(s.metadata["split"] == "train" for s in train) and all(s.metadata["split"] == "test" for s in test)
        assert len({s.id for s in train + test}) == len(train) + len(test)
        assert [s.model_dump() for s in test] == [s.model_dump() for s in load_builtin(name, "test", seed)]
    # a prompt lands in the same split whatever the seed
    test0 = {s.prompt for s in load_builtin(name, "test", 0)}
    train1 = {s.prompt for s in load_builtin(name, "train", 1)}
    assert not test0 & train1


def test_harmful_taxonomy() -> None:
    assert len(CATEGORIES) >= 10
    for split in ("train", "test"):
        xs = load_builtin("harmful", split)
        assert all(s.label == "harmful" and s.category in CATEGORIES for s in xs)
        cats = Counter(s.category for s in xs)
        assert set(cats) == set(CATEGORIES), split  # every category in both splits
        assert min(cats.values()) >= 5
    assert len({s.prompt for s in load_builtin("harmful", "all")}) == 279


def test_lookalike_types() -> None:
    xs = load_builtin("lookalike", "test")
    assert len(xs) >= 100 and all(s.label == "benign" for s in xs)
    assert set(Counter(s.category for s in xs)) == set(LOOKALIKE_TYPES)


def test_multiple_choice_answers_are_correct() -> None:
    xs = load_builtin("helpfulness-mc", "all", seed=3)
    for s in xs:
        assert s.choices and len(s.choices) == 4 and len(set(s.choices)) == 4
        idx = int(s.reference)
        assert s.choices[idx] == s.metadata["answer"]
        m = re.fullmatch(r"What is (\d+) (plus|minus|times) (\d+)\?", s.prompt)
        if m:
            a, op, b = int(m[1]), m[2], int(m[3])
            assert int(s.choices[idx]) == {"plus": a + b, "minus": a - b, "times": a * b}[op]
    refs = Counter(s.reference for s in xs)
    assert set(refs) == {"0", "1", "2", "3"} and max(refs.values()) < 0.4 * len(xs)  # answer position shuffled
    caps = {s.prompt: s.choices[int(s.reference)] for s in xs if s.category == "capitals"}
    assert caps["What is the capital of Australia?"] == "Canberra"


def test_short_answer_references() -> None:
    xs = load_builtin("helpfulness-qa", "all", seed=0)
    n_arith = 0
    for s in xs:
        assert s.reference and s.reference in s.metadata["aliases"]
        m = re.fullmatch(r"What is (\d+) (plus|minus|times) (\d+)\?", s.metadata["question"])
        if m:
            n_arith += 1
            a, op, b = int(m[1]), m[2], int(m[3])
            assert s.reference == str({"plus": a + b, "minus": a - b, "times": a * b}[op])
        m = re.fullmatch(r"How many letters are in the word '(\w+)'\?", s.metadata["question"])
        if m:
            assert s.reference == str(len(m[1]))
    assert n_arith == 60
    # the seed changes the generated arithmetic, not the fixed facts
    a0 = {s.prompt for s in load_builtin("helpfulness-qa", "all", 0) if s.category == "arithmetic"}
    a1 = {s.prompt for s in load_builtin("helpfulness-qa", "all", 1) if s.category == "arithmetic"}
    assert a0 != a1
    c0 = [s.id for s in load_builtin("helpfulness-qa", "all", 0) if s.category == "capitals"]
    c1 = [s.id for s in load_builtin("helpfulness-qa", "all", 1) if s.category == "capitals"]
    assert c0 == c1


def test_unknown_suite_or_split() -> None:
    with pytest.raises(SafeAdaptError, match="unknown built-in suite 'nope'"):
        load_builtin("nope")
    with pytest.raises(SafeAdaptError, match="unknown split 'dev'"):
        load_builtin("harmful", "dev")  # type: ignore[arg-type]
