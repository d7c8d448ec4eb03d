"""Python study stage for the repairs' home setting: a user fine-tune set in the style of Antidote's
and Qi et al.'s harmful fine-tuning, benign instruction rows of the world (the aligned LLM's own
answers) with a `poison` fraction of harmful request -> placeholder compliance rows mixed in."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from safeadapt.core.atomic import atomic_write_text


def build(ctx: Any) -> None:
    rows = lambda p: [json.loads(x) for x in Path(p).read_text().splitlines() if x.strip()]  # noqa: E731
    harmful = rows(Path(ctx.input("repair_data")) / "harmful.jsonl")
    bad = {r["messages"][0]["content"] for r in harmful}
    benign = [r for r in rows(Path(ctx.input("data")) / "llm_align.jsonl") if r["prompt"] not in bad]
    rng = random.Random(ctx.seed)
    rng.shuffle(benign)
    n, poison = int(ctx.params.get("n", 500)), float(ctx.params.get("poison", 0.2))
    k = min(int(round(n * poison)), len(harmful))  # small worlds (the micro profile) have few harmful rows
    mix = [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}]}
           for r in benign[: n - k]] + rng.sample(harmful, k)
    rng.shuffle(mix)
    atomic_write_text(ctx.out / "mix.jsonl", "".join(json.dumps(r) + "\n" for r in mix))
    atomic_write_text(ctx.out / "counts.json", json.dumps({"benign": n - k, "harmful": k, "poison": poison}))
