"""Python study stage for the demo's repairs: from the world's LLM corpora, the harmful fine-tune
set (harmful request -> placeholder compliance; the `attack` stage makes the unaligned model from
it; also Antidote's harmful calibration set), the safety set (harmful request -> refusal), the
utility set (benign request -> answer) and text-only safety DPO pairs (refusal > placeholder, SOMF)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from safeadapt.core.atomic import atomic_write_text


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _chat(prompt: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def build(ctx: Any) -> None:
    data = Path(ctx.input("data"))
    pre, ali = _rows(data / "llm_pretrain.jsonl"), _rows(data / "llm_align.jsonl")
    aligned_answer = {r["prompt"]: r["answer"] for r in ali}
    harmful = [r for r in pre if r["prompt"] in aligned_answer and aligned_answer[r["prompt"]] != r["answer"]]
    benign = [r for r in ali if r["prompt"] not in {h["prompt"] for h in harmful}]
    rng = random.Random(ctx.seed)
    rng.shuffle(harmful)
    rng.shuffle(benign)
    n = int(ctx.params.get("n", 64))
    _write(ctx.out / "harmful.jsonl", [_chat(r["prompt"], r["answer"]) for r in harmful])
    _write(ctx.out / "refusals.jsonl", [_chat(r["prompt"], aligned_answer[r["prompt"]]) for r in harmful[:n]])
    _write(ctx.out / "utility.jsonl", [_chat(r["prompt"], r["answer"]) for r in benign[:n]])
    _write(ctx.out / "pairs.jsonl", [{"prompt": r["prompt"], "chosen": aligned_answer[r["prompt"]], "rejected": r["answer"]}
                                     for r in harmful[:n]])
    atomic_write_text(ctx.out / "counts.json", json.dumps({"harmful": len(harmful), "benign": len(benign), "n": n}))
