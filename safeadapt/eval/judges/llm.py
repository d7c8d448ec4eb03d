"""Shared machinery for LLM-as-judge graders: build one judge prompt per item, generate through any
`Backend` in batches (greedy by default), parse the output robustly. Unparsable outputs never crash:
they become a Judgement labelled "unparsed" with score NaN and `extra["parse_failed"] = True`, counted
and shown, never folded into refusal or compliance (metrics leave them out of every denominator)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import stable_hash
from safeadapt.eval.types import Backend, DecodingConfig, GenRequest, JudgeItem, Judgement

#: label given to an item whose judge output could not be parsed: its own label, so a parse failure
#: can neither lower an attack success rate (as "refusal" would) nor raise it (see `count_parse_failures`).
DEFAULT_PARSE_FAILURE_LABEL = "unparsed"


@dataclass
class Parsed:
    """What a parser extracted from one judge output."""

    ok: bool
    score: float = math.nan
    label: str | None = None
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def truncate(text: str, limit: int) -> str:
    """Keep judge prompts bounded: very long responses are cut in the middle, marked."""
    if limit <= 0 or len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n[... truncated ...]\n" + text[-half:]


def clip_tokens(text: str, tokenizer: Any, limit: int, *, side: str = "right",
                keep_special: bool = False) -> tuple[str, bool]:
    """(text, clipped): `text` cut to `limit` tokens of the classifier's `tokenizer` the way the
    field's pipelines do it: `tokenizer(text, max_length=limit, truncation=True)` (its special
    tokens count toward the limit), cut on `side`, then decoded (`keep_special`: with the special
    tokens' text). Without a tokenizer (an HTTP endpoint) the fallback keeps 3/4 of `limit`
    whitespace-separated words (about `limit` tokens of English text)."""
    if limit <= 0:
        return text, False
    if tokenizer is None:
        words = text.split()
        keep = max(1, (limit * 3) // 4)
        if len(words) <= keep:
            return text, False
        return " ".join(words[:keep] if side == "right" else words[-keep:]), True
    old = getattr(tokenizer, "truncation_side", "right")
    tokenizer.truncation_side = side
    try:
        ids = tokenizer(text, max_length=limit, truncation=True)["input_ids"]
        full = len(tokenizer(text)["input_ids"])
    finally:
        tokenizer.truncation_side = old
    return tokenizer.decode(ids, skip_special_tokens=not keep_special), full > limit


class LLMJudge:
    """Base class: subclasses set `name`, implement `messages(item)` and `parse(text)` and
    `label_of(parsed)`. `backend` is any object with `generate(list[GenRequest], DecodingConfig)`.
    `messages` may return a string instead: a classifier's own input text, sent as a raw prompt
    (no chat template). Class attributes say what a judge needs: `needs_backend`, and its greedy
    generation budget `default_max_new_tokens`."""

    name = "llm"
    needs_backend = True
    default_max_new_tokens = 256

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        decoding: DecodingConfig | None = None,
        max_response_chars: int = 6000,
        parse_failure_label: str = DEFAULT_PARSE_FAILURE_LABEL,
    ) -> None:
        if backend is None or not hasattr(backend, "generate"):
            raise SafeAdaptError(
                f"judge {self.name!r} is an LLM judge and needs a backend "
                "(pass backend=..., or --judge-model PATH / --judge-endpoint URL on the command line)"
            )
        if parse_failure_label != "unparsed":
            raise SafeAdaptError(
                f"parse_failure_label must be 'unparsed' (an unreadable judge reply is never counted as "
                f"refusal or compliance), got {parse_failure_label!r}"
            )
        self.backend = backend
        self.decoding = decoding or DecodingConfig(max_new_tokens=self.default_max_new_tokens, temperature=0.0)
        self.max_response_chars = int(max_response_chars)
        self.parse_failure_label = parse_failure_label

    # -- to implement -----------------------------------------------------------------------
    def messages(self, item: JudgeItem) -> list[dict[str, str]] | str:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse(self, text: str) -> Parsed:  # pragma: no cover - abstract
        raise NotImplementedError

    def label_of(self, parsed: Parsed) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    def requests(self, items: Sequence[JudgeItem]) -> list[GenRequest]:
        out = []
        for i, it in enumerate(items):
            msgs = self.messages(it)
            key = f"{self.name}:{i}:{stable_hash(msgs)[:16]}"
            if isinstance(msgs, str):
                out.append(GenRequest(key=key, messages=[], raw_prompt=msgs))
            else:
                out.append(GenRequest(key=key, messages=msgs))
        return out

    def from_output(self, text: str) -> Judgement:
        try:
            parsed = self.parse(text if isinstance(text, str) else "")
        except Exception as e:  # a parser bug on a weird output must not kill a long run
            parsed = Parsed(ok=False, reason=f"parser error: {type(e).__name__}")
        if not parsed.ok:
            return Judgement(
                label=self.parse_failure_label,  # type: ignore[arg-type]
                score=math.nan,
                reason=parsed.reason or "unparsable judge output",
                extra={"parse_failed": True, "raw": text, **parsed.fields},
            )
        return Judgement(
            label=self.label_of(parsed),  # type: ignore[arg-type]
            score=float(parsed.score),
            reason=parsed.reason,
            extra={"parse_failed": False, "raw": text, **parsed.fields},
        )

    def judge(self, items: list[JudgeItem]) -> list[Judgement]:
        if not items:
            return []
        outputs = self.backend.generate(self.requests(items), self.decoding)
        if len(outputs) != len(items):
            raise SafeAdaptError(f"judge backend returned {len(outputs)} outputs for {len(items)} requests")
        return [self.from_output(o) for o in outputs]


def count_parse_failures(judgements: Sequence[Judgement]) -> int:
    return sum(1 for j in judgements if j.extra.get("parse_failed"))
