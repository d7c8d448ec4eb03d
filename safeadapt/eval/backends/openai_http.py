"""OpenAI-compatible HTTP backend (POST {base_url}/chat/completions, or /completions for a raw
classifier prompt) for a served model or an LLM judge, using only urllib: timeouts, bounded
retries with exponential backoff on 429 / 5xx / connection errors, the API key read from a named
environment variable and never logged or put in errors or results. Log-likelihoods are not
offered by chat endpoints (NotImplementedError)."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import stable_hash
from safeadapt.eval.backends.common import derive_seed, image_data_url
from safeadapt.eval.backends.registry import BACKENDS
from safeadapt.eval.types import DecodingConfig, GenRequest, LoglikRequest

log = logging.getLogger("safeadapt.eval.openai")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def _body(model: str, field: str, value: Any, req: GenRequest, decoding: DecodingConfig) -> dict[str, Any]:
    """A request body: the model, its `field` (messages or prompt), then the decoding settings."""
    body: dict[str, Any] = {
        "model": model,
        field: value,
        "max_tokens": int(decoding.max_new_tokens),
        "temperature": float(decoding.temperature),
        "seed": derive_seed(decoding.seed, req.key) % (2**31),
    }
    if decoding.temperature > 0:
        body["top_p"] = float(decoding.top_p)
    return body


def chat_payload(model: str, req: GenRequest, decoding: DecodingConfig) -> dict[str, Any]:
    """The /chat/completions JSON body for one request (images as PNG data-URL content parts)."""
    messages: list[dict[str, Any]] = []
    placed = not req.images
    for m in req.messages:
        if not placed and m["role"] == "user":
            parts: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": image_data_url(im)}} for im in req.images
            ]
            parts.append({"type": "text", "text": m["content"]})
            messages.append({"role": "user", "content": parts})
            placed = True
        else:
            messages.append({"role": m["role"], "content": m["content"]})
    return _body(model, "messages", messages, req, decoding)


def completion_payload(model: str, req: GenRequest, decoding: DecodingConfig) -> dict[str, Any]:
    """The /completions JSON body for a raw-prompt request (a classifier's own text format: no chat
    template; the server's tokenizer adds its BOS, as vLLM's server does)."""
    if req.images:
        raise SafeAdaptError(f"request {req.key}: a raw prompt cannot carry images")
    return _body(model, "prompt", req.raw_prompt, req, decoding)


@BACKENDS.register("openai")
class OpenAIBackend:
    """`OpenAIBackend(model, base_url="http://127.0.0.1:8000/v1", api_key_env="OPENAI_API_KEY")`.

    `timeout` (s) per attempt; up to `max_retries` retries with backoff `backoff * 2**attempt`
    (capped at `max_backoff`) on retryable statuses and connection errors/timeouts; other HTTP
    errors fail at once. `concurrency` requests are in flight at a time. The fingerprint covers
    endpoint + model name (the served weights are not visible over HTTP)."""

    supports_images = True
    supports_loglikelihood = False

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        concurrency: int = 4,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.ref = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.concurrency = max(1, int(concurrency))
        self.extra_body = dict(extra_body or {})
        self.fingerprint = stable_hash(
            {"backend": "openai", "base_url": self.base_url, "model": model, "extra": self.extra_body}
        )

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        data = json.dumps({**body, **self.extra_body}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                detail = e.read()[:200].decode("utf-8", "replace") if e.fp else ""
                last = self._redact(f"HTTP {e.code} {' '.join(detail.split())}".strip())
                if e.code not in RETRY_STATUS:
                    raise SafeAdaptError(f"request to {url} failed: {last}") from None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                last = self._redact(f"{type(e).__name__}: {reason}")
            except json.JSONDecodeError:
                raise SafeAdaptError(f"request to {url} returned invalid JSON") from None
            if attempt < self.max_retries:
                delay = min(self.max_backoff, self.backoff * (2**attempt))
                log.warning("retrying %s in %.2fs (attempt %d/%d): %s", url, delay, attempt + 1, self.max_retries, last)
                time.sleep(delay)
        raise SafeAdaptError(f"request to {url} failed after {self.max_retries + 1} attempts: {last}")

    def _one(self, req: GenRequest, decoding: DecodingConfig) -> str:
        if req.raw_prompt is not None:
            out = self._post("/completions", completion_payload(self.model, req, decoding))
            try:
                text = out["choices"][0]["text"]
            except (KeyError, IndexError, TypeError):
                raise SafeAdaptError(f"response from {self.base_url} for request {req.key} "
                                     "has no choices[0].text") from None
            return (text or "").strip()
        out = self._post("/chat/completions", chat_payload(self.model, req, decoding))
        try:
            content = out["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise SafeAdaptError(
                f"response from {self.base_url} for request {req.key} has no choices[0].message.content"
            ) from None
        return (content or "").strip()

    def generate(self, requests: list[GenRequest], decoding: DecodingConfig) -> list[str]:
        if self.concurrency == 1 or len(requests) <= 1:
            return [self._one(r, decoding) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self._one(r, decoding), requests))

    def loglikelihood(self, requests: list[LoglikRequest]) -> list[float]:
        raise NotImplementedError(
            "the OpenAI-compatible chat backend has no log-likelihoods; use --backend hf or vllm for multiple-choice "
            "items"
        )
