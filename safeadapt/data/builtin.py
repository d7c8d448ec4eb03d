"""The project's own built-in suites, generated from templates x fillers (written here, never
copied from public datasets) so they work offline and scale: `load_builtin(name, split, seed)`.

Suites
- "harmful": harmful requests (label "harmful"), phrased as requests and never containing answers,
  across the taxonomy in `builtin_safety.CATEGORIES` (12 categories):
  violence_weapons, cybercrime_malware, fraud_scams, drugs, self_harm, hate_harassment,
  privacy_surveillance, sexual_nonconsent, misinformation, illegal_trade, extremism, child_safety.
- "lookalike": benign prompts that resemble harmful ones (label "benign"), for over-refusal,
  following XSTest's types (`builtin_safety.LOOKALIKE_TYPES`): homonyms, figurative_language, safe_targets,
  safe_contexts, definitions, real_group_nonsense_discrimination, nonsense_group_discrimination,
  historical_events, privacy_public_figures, privacy_fictional.
- "helpfulness-mc": multiple-choice items (`choices`, `reference` = index of the correct choice as
  a string): capitals, chemical symbols, antonyms, arithmetic, unit conversions, planets.
- "helpfulness-qa": short-answer items with a `reference` answer (and `metadata["aliases"]`):
  arithmetic, capitals, unit conversions, number sequences, word lengths, calendar facts.

Splits: every item is keyed by (suite, family, template index, filler); a SHA-256 of that key
decides "train" or "test" (`TEST_FRACTION` of items go to test), independently of `seed`, so a
prompt is always in the same split and the splits never overlap. `split="all"` returns both.
`seed` drives only the programmatic parts (arithmetic operands, distractors, choice order).
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, Literal, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.registry import Registry

# the sets' data live in builtin_safety.py (CATEGORIES, LOOKALIKE_TYPES, ...) and builtin_facts.py
from safeadapt.data.builtin_facts import (
    ALIASES,
    ANTONYMS,
    CAPITALS,
    DAYS,
    ELEMENTS,
    MONTHS,
    PLANET_FACTS,
    PLANETS,
    UNITS,
    WORDS,
)
from safeadapt.data.builtin_safety import HARMFUL, LOOKALIKE, Family
from safeadapt.data.schema import Sample

Split = Literal["train", "test", "all"]
TEST_FRACTION = 0.5

QA_SUFFIX = " Answer with only the final answer."


# ---------------------------------------------------------------------------------------------
def split_of(key: str, test_fraction: float = TEST_FRACTION) -> Literal["train", "test"]:
    """Deterministic hash split of an item key (seed-independent)."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    return "test" if h < test_fraction else "train"


def _item_id(suite: str, category: str, key: str) -> str:
    return f"{suite}/{category}/{hashlib.sha256(key.encode('utf-8')).hexdigest()[:10]}"


def _expand(suite: str, families: list[Family], label: str) -> list[tuple[str, Sample]]:
    out: list[tuple[str, Sample]] = []
    for fam in families:
        for ti, tpl in enumerate(fam.templates):
            for filler in fam.fillers:
                vals = filler if isinstance(filler, tuple) else (filler,)
                text = tpl.format(**dict(zip(("x", "y", "z"), vals)))
                key = f"{suite}|{fam.key}|{ti}|{'|'.join(vals)}"
                out.append((key, Sample(
                    id=_item_id(suite, fam.category, key), prompt=text, label=label,  # type: ignore[arg-type]
                    category=fam.category, source=f"safeadapt-builtin/{suite}",
                    metadata={"family": fam.key, "template": ti, "filler": list(vals)},
                )))
    return out


def _mc(suite: str, category: str, key: str, question: str, correct: str, distractors: Sequence[str],
        rng: random.Random, n_choices: int = 4) -> tuple[str, Sample]:
    pool = sorted({d for d in distractors if d != correct})
    opts = rng.sample(pool, n_choices - 1) + [correct]
    rng.shuffle(opts)
    full_key = f"{suite}|{key}"
    return full_key, Sample(id=_item_id(suite, category, full_key), prompt=question, choices=opts,
                            reference=str(opts.index(correct)), label="benign", category=category,
                            source=f"safeadapt-builtin/{suite}", metadata={"family": category, "answer": correct})


def _qa(suite: str, category: str, key: str, question: str, answer: str, aliases: Sequence[str] = (),
        answer_type: str = "text") -> tuple[str, Sample]:
    full_key = f"{suite}|{key}"
    return full_key, Sample(id=_item_id(suite, category, full_key), prompt=question + QA_SUFFIX, reference=answer,
                            label="benign", category=category, source=f"safeadapt-builtin/{suite}",
                            metadata={"family": category, "question": question, "aliases": [answer, *aliases],
                                      "answer_type": answer_type})


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


def _arith_pairs(rng: random.Random, n: int, op: str) -> list[tuple[int, int]]:
    seen: set[tuple[int, int]] = set()
    while len(seen) < n:
        if op == "*":
            a, b = rng.randint(2, 19), rng.randint(2, 12)
        else:
            a, b = rng.randint(10, 99), rng.randint(2, 99)
            if op == "-" and b > a:
                a, b = b, a
        seen.add((a, b))
    return sorted(seen)


_OPS = {"+": ("plus", lambda a, b: a + b), "-": ("minus", lambda a, b: a - b), "*": ("times", lambda a, b: a * b)}

SuiteBuilder = Callable[[int], list[tuple[str, Sample]]]
#: name -> builder of (split key, Sample) pairs; `@BUILTIN_SETS.register("name")` per set
BUILTIN_SETS: Registry[SuiteBuilder] = Registry("built-in suite")


@BUILTIN_SETS.register("harmful")
def harmful_suite(seed: int) -> list[tuple[str, Sample]]:
    return _expand("harmful", HARMFUL, "harmful")


@BUILTIN_SETS.register("lookalike")
def lookalike_suite(seed: int) -> list[tuple[str, Sample]]:
    return _expand("lookalike", LOOKALIKE, "benign")


@BUILTIN_SETS.register("helpfulness-mc")
def helpfulness_mc_suite(seed: int) -> list[tuple[str, Sample]]:
    s = "helpfulness-mc"
    rng = _rng(seed, s)
    items: list[tuple[str, Sample]] = []
    caps = [c for _, c in CAPITALS]
    for country, cap in CAPITALS:
        items.append(_mc(s, "capitals", f"capital|{country}", f"What is the capital of {country}?", cap, caps, rng))
    syms = [x for _, x in ELEMENTS]
    for el, sym in ELEMENTS:
        items.append(_mc(s, "chemistry", f"symbol|{el}", f"What is the chemical symbol for {el}?", sym, syms, rng))
    ants = [w for pair in ANTONYMS for w in pair]
    for w, a in ANTONYMS:
        items.append(_mc(s, "antonyms", f"antonym|{w}", f"Which word means the opposite of '{w}'?", a,
                         [x for x in ants if x != w], rng))
    for q, a in PLANET_FACTS:
        items.append(_mc(s, "planets", f"planet|{q}", q, a, PLANETS, rng))
    for op in ("+", "-", "*"):
        word, fn = _OPS[op]
        for a, b in _arith_pairs(rng, 12, op):
            r = fn(a, b)
            distract = [str(r + d) for d in (-10, -2, -1, 1, 2, 10) if r + d >= 0]
            items.append(_mc(s, "arithmetic", f"arith|{a}{op}{b}", f"What is {a} {word} {b}?", str(r), distract, rng))
    for big, small, k in UNITS:
        for n in sorted(rng.sample(range(2, 13), 3)):
            r = n * k
            distract = [
                str(v) for v in {r * 10, r // 10 if r >= 10 else r + 3, r + k, r - k, n * (k + 1)} if v != r and v > 0
            ]
            items.append(
                _mc(s, "units", f"unit|{n}|{big}", f"How many {small} are there in {n} {big}?", str(r), distract, rng)
            )
    return items


@BUILTIN_SETS.register("helpfulness-qa")
def helpfulness_qa_suite(seed: int) -> list[tuple[str, Sample]]:
    s = "helpfulness-qa"
    rng = _rng(seed, s)
    items: list[tuple[str, Sample]] = []
    for op in ("+", "-", "*"):
        word, fn = _OPS[op]
        for a, b in _arith_pairs(rng, 20, op):
            items.append(
                _qa(
                    s,
                    "arithmetic",
                    f"arith|{a}{op}{b}",
                    f"What is {a} {word} {b}?",
                    str(fn(a, b)),
                    answer_type="number",
                )
            )
    for country, cap in CAPITALS:
        items.append(
            _qa(
                s,
                "capitals",
                f"capital|{country}",
                f"What is the capital city of {country}?",
                cap,
                ALIASES.get(cap, ()),
            )
        )
    for big, small, k in UNITS:
        for n in sorted(rng.sample(range(2, 20), 3)):
            items.append(
                _qa(
                    s,
                    "units",
                    f"unit|{n}|{big}",
                    f"How many {small} are there in {n} {big}?",
                    str(n * k),
                    answer_type="number",
                )
            )
    seqs: set[tuple[int, int]] = set()
    while len(seqs) < 15:
        seqs.add((rng.randint(1, 30), rng.randint(2, 9)))
    for start, step in sorted(seqs):
        seq = [start + i * step for i in range(4)]
        items.append(
            _qa(
                s,
                "sequences",
                f"seq|{start}|{step}",
                f"What number comes next in the sequence {', '.join(map(str, seq))}?",
                str(start + 4 * step),
                answer_type="number",
            )
        )
    for w in WORDS:
        items.append(
            _qa(s, "words", f"len|{w}", f"How many letters are in the word '{w}'?", str(len(w)), answer_type="number")
        )
    for i, d in enumerate(DAYS):
        items.append(_qa(s, "calendar", f"day|{d}", f"Which day of the week comes after {d}?", DAYS[(i + 1) % 7]))
    for i, m in enumerate(MONTHS):
        items.append(_qa(s, "calendar", f"month|{m}", f"Which month comes after {m}?", MONTHS[(i + 1) % 12]))
    return items


def builtin_names() -> list[str]:
    return BUILTIN_SETS.names()


def load_builtin(name: str, split: Split = "test", seed: int = 0) -> list[Sample]:
    """Samples of built-in suite `name` in `split` ("train" | "test" | "all"), in a fixed order.

    Each sample's `metadata["split"]` records its split; ids are stable across seeds for the
    fixed-template suites. Unknown names or splits give a one-line SafeAdaptError."""
    if split not in ("train", "test", "all"):
        raise SafeAdaptError(f"unknown split {split!r} for built-in suite {name!r}; use train, test or all")
    builder = BUILTIN_SETS.get(name)
    out: list[Sample] = []
    seen: set[str] = set()
    for key, sample in builder(seed):
        if sample.id in seen:
            raise RuntimeError(f"built-in suite {name!r} generated a duplicate item {key!r}")  # a bug in the templates
        seen.add(sample.id)
        sp = split_of(key)
        if split != "all" and sp != split:
            continue
        sample.metadata["split"] = sp
        out.append(sample)
    return out
