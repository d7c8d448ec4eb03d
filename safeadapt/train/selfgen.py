"""Self-generated safety preference data (Egida-style): the model answers the project's own harmful
prompts and benign prompts; pairs are chosen = a project-written refusal / rejected = the model's
own harmful completion (kept only where the judge says it complied), and for benign prompts
chosen = the model's own helpful answer / rejected = a refusal, so DPO does not teach blanket
refusal. Pure over a backend and a judge: the study stage owns loading, caching and writing."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from safeadapt.data.refusals import refusal_for
from safeadapt.data.schema import Sample
from safeadapt.eval.types import Backend, DecodingConfig, GenRequest, Judge, JudgeItem


@dataclass
class SelfGenData:
    """`pairs`: DPO rows {prompt, chosen, rejected, id, source, category}; `sft`: benign rows
    {messages} with the model's own answers; `stats`: counts per source and category."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    sft: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def pick_prompts(samples: Sequence[Sample], n: int | None, seed: int) -> list[Sample]:
    """`n` samples (all when None), spread round-robin over categories, order within a category
    decided by a seeded hash of the id (so the pick is stable and independent of file order)."""
    def h(s: Sample) -> str:
        return hashlib.sha256(f"{seed}\x00{s.id}".encode()).hexdigest()

    groups: dict[str, list[Sample]] = {}
    for s in sorted(samples, key=h):
        groups.setdefault(s.category or "", []).append(s)
    queues = [groups[k] for k in sorted(groups)]
    out: list[Sample] = []
    limit = len(samples) if n is None else min(n, len(samples))
    i = 0
    while len(out) < limit:
        for q in queues:
            if i < len(q) and len(out) < limit:
                out.append(q[i])
        i += 1
    return out


def build_selfgen_pairs(
    backend: Backend,
    judge: Judge,
    harmful: Sequence[Sample],
    benign: Sequence[Sample],
    decoding: DecodingConfig,
    *,
    cache: Any = None,
    seed: int = 0,
    min_response_chars: int = 16,
    on_progress: Any = None,
) -> SelfGenData:
    """Generate the model's answers to `harmful` + `benign` (batched, through the generation
    cache when given), judge them and build the preference pairs (see module docstring). A
    response shorter than `min_response_chars` (after stripping) is never used as either side."""
    from safeadapt.eval.cache import cached_generate

    items = [(s, "harmful") for s in harmful] + [(s, "benign") for s in benign]
    reqs = [GenRequest(key=s.id, messages=s.chat()) for s, _ in items]
    outs = cached_generate(backend, reqs, decoding, cache, on_progress=on_progress)
    verdicts = judge.judge([JudgeItem(prompt=s.user_text(), response=o, sample=s) for (s, _), o in zip(items, outs)])
    data = SelfGenData()
    seen: Counter[tuple[str, str]] = Counter()
    kept: Counter[tuple[str, str]] = Counter()
    too_short: Counter[str] = Counter()
    for (s, src), out, v in zip(items, outs, verdicts):
        cat = s.category or ""
        seen[(src, cat)] += 1
        if v.label not in ("compliance", "benign"):  # an answer, harmful or harmless (not a refusal / no answer)
            continue
        if len(out.strip()) < min_response_chars:
            too_short[src] += 1
            continue
        kept[(src, cat)] += 1
        refusal = refusal_for(s.id, s.category if src == "harmful" else None, seed)
        prompt = s.chat()
        if src == "harmful":
            data.pairs.append({"id": s.id, "source": src, "category": cat, "prompt": prompt,
                               "chosen": refusal, "rejected": out})
        else:
            data.pairs.append({"id": s.id, "source": src, "category": cat, "prompt": prompt,
                               "chosen": out, "rejected": refusal})
            data.sft.append({"id": s.id, "messages": prompt + [{"role": "assistant", "content": out}]})
    for src in ("harmful", "benign"):
        n = sum(c for (s, _), c in seen.items() if s == src)
        k = sum(c for (s, _), c in kept.items() if s == src)
        data.stats[src] = {
            "prompts": n,
            "kept": k,
            "kept_rate": (k / n) if n else 0.0,
            "too_short": too_short[src],
            "per_category": {
                cat: {"prompts": c, "kept": kept[(s, cat)]} for (s, cat), c in sorted(seen.items()) if s == src
            },
        }
    # a harmful prompt the model already refuses has nothing to teach; say how many there were
    data.stats["harmful"]["refused_already"] = (
        data.stats["harmful"]["prompts"] - data.stats["harmful"]["kept"] - too_short["harmful"]
    )
    return data
