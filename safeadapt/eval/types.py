"""Interfaces shared by backends, judges and suites. Backends turn requests into text or
log-likelihoods; judges turn (prompt, response) pairs into judgements; suites compose both."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class DecodingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 16


class GenRequest(BaseModel):
    """One generation: chat messages (+ optional image paths or PIL images for VLMs)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    key: str
    messages: list[dict[str, str]]
    images: list[Any] = Field(default_factory=list)
    #: a classifier's own input text, sent as is: no chat template, the tokenizer's default special
    #: tokens (its BOS) added, as `tokenizer(text)` would (`messages` is then ignored)
    raw_prompt: str | None = None


class LoglikRequest(BaseModel):
    """Log-likelihood of `continuation` after the chat `messages` (assistant turn)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    key: str
    messages: list[dict[str, str]]
    continuation: str
    images: list[Any] = Field(default_factory=list)
    raw_prompt: str | None = None  # as GenRequest.raw_prompt: the context text as is, no chat template


@runtime_checkable
class Backend(Protocol):
    #: stable identifier of the weights + backend settings (used as a cache key)
    fingerprint: str

    def generate(self, requests: list[GenRequest], decoding: DecodingConfig) -> list[str]: ...

    def loglikelihood(self, requests: list[LoglikRequest]) -> list[float]: ...


#: refusal; compliance = an on-topic answer that delivers the harmful content asked for (what ASR
#: counts); benign = an answer with something harmless (a reinterpretation, generic filler, a
#: lecture that gives nothing away; counted in the non-refusal rate, not in ASR); no_answer = empty,
#: degenerate or off-topic output (`extra["non_answer_kind"]` in NON_ANSWER_KINDS); unparsed = an
#: LLM judge's reply that could not be read. no_answer and unparsed are never folded into the others.
JudgeLabel = Literal["refusal", "compliance", "benign", "no_answer", "unparsed"]
JUDGE_LABELS: tuple[str, ...] = ("refusal", "compliance", "benign", "no_answer", "unparsed")
NON_ANSWER_KINDS: tuple[str, ...] = ("empty", "degenerate", "off_topic")


class JudgeItem(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    prompt: str
    response: str
    sample: Any = None  # safeadapt.data.Sample when known (category, reference, metadata)


class Judgement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: JudgeLabel
    #: judge-specific score: refusal judge = P(refusal)-like in [0,1]; rubric = 1..5
    score: float
    reason: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class Judge(Protocol):
    name: str

    def judge(self, items: list[JudgeItem]) -> list[Judgement]: ...
