"""Python study stage (`function: safeadapt.train.selfgen_sets:build`, input `align`: a selfgen_dpo
stage) that turns the self-generated alignment data into the repairs' sets, with no external data:
`harmful.jsonl` (harmful prompt -> the model's own judged-compliant completion: Antidote's
calibration set and the harmful fine-tune that makes RESTA's `unaligned` model), `refusals.jsonl`
(the same prompts -> the project's refusals), `utility.jsonl` (benign prompts -> the model's own
answers) and `pairs.jsonl` (the harmful-prompt preference pairs, for SOMF)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safeadapt.core.atomic import atomic_write_text
from safeadapt.core.errors import SafeAdaptError


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SafeAdaptError(f"{path}: missing (the `align` input must be a selfgen_dpo stage)")
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _user(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else next(m["content"] for m in prompt if m["role"] == "user")


def _chat(prompt: Any, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": _user(prompt)}, {"role": "assistant", "content": answer}]}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def build(ctx: Any) -> None:
    src = Path(ctx.input("align"))
    pairs = _read(src / "pairs.jsonl")
    harmful = [p for p in pairs if p.get("source") == "harmful"]
    if not harmful:
        raise SafeAdaptError(f"{src / 'pairs.jsonl'}: no harmful-prompt pair (source 'harmful') to build the repair sets from")
    n = int(ctx.params.get("n", 0)) or len(harmful)
    utility = _read(src / "sft.jsonl")
    _write(ctx.out / "harmful.jsonl", [_chat(p["prompt"], p["rejected"]) for p in harmful])
    _write(ctx.out / "refusals.jsonl", [_chat(p["prompt"], p["chosen"]) for p in harmful[:n]])
    _write(ctx.out / "utility.jsonl", utility[:n])
    _write(ctx.out / "pairs.jsonl", [{"prompt": _user(p["prompt"]), "chosen": p["chosen"], "rejected": p["rejected"]}
                                     for p in harmful[:n]])
    atomic_write_text(ctx.out / "counts.json", json.dumps({"harmful": len(harmful), "utility": min(n, len(utility)), "n": n}))
