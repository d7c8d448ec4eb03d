"""vLLM backend (optional extra `safeadapt[vllm]`; vllm is imported only when this backend is
built). The request mapping is pure and tested without vLLM: chat messages -> prompt text via the
model's chat template + `multi_modal_data` for images, DecodingConfig -> SamplingParams fields
(per-request seed from (seed, key)), and prompt log-probs -> continuation log-likelihood."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import hash_path, stable_hash
from safeadapt.eval.backends.common import derive_seed, load_image, with_image_parts
from safeadapt.eval.backends.registry import BACKENDS
from safeadapt.eval.types import DecodingConfig, GenRequest, LoglikRequest


def sampling_kwargs(decoding: DecodingConfig, key: str) -> dict[str, Any]:
    """SamplingParams(**this) for one request. Greedy = temperature 0 (vLLM ignores top_p then)."""
    kw: dict[str, Any] = {
        "max_tokens": int(decoding.max_new_tokens),
        "temperature": float(decoding.temperature),
        "top_p": float(decoding.top_p) if decoding.temperature > 0 else 1.0,
        "seed": derive_seed(decoding.seed, key) % (2**31),
    }
    return kw


def prompt_input(req: GenRequest | LoglikRequest, render: Callable[[list[dict[str, Any]]], str]) -> dict[str, Any]:
    """A vLLM prompt dict: {"prompt": chat text up to the assistant header, or a raw prompt as is} plus
    {"multi_modal_data": {"image": PIL or [PIL, ...]}} when the request has images. `render` is
    the chat template (messages in content-part form when there are images)."""
    if req.raw_prompt is not None:  # a classifier's own text: vLLM tokenizes it with the BOS, as HarmBench does
        if req.images:
            raise SafeAdaptError(f"request {req.key}: a raw prompt cannot carry images")
        return {"prompt": req.raw_prompt}
    msgs = with_image_parts(req.messages, len(req.images))
    out: dict[str, Any] = {"prompt": render(msgs)}
    if req.images:
        imgs = [load_image(i, where=f"request {req.key}") for i in req.images]
        out["multi_modal_data"] = {"image": imgs[0] if len(imgs) == 1 else imgs}
    return out


def continuation_logprob(prompt_logprobs: Sequence[Any], token_ids: Sequence[int], n_context: int) -> float:
    """Sum of log-probs of token_ids[n_context:] from vLLM's `prompt_logprobs` (one entry per
    prompt position: None for the first, else {token_id: Logprob(.logprob) or float})."""
    total = 0.0
    for pos in range(n_context, len(token_ids)):
        entry = prompt_logprobs[pos]
        if entry is None or token_ids[pos] not in entry:
            raise SafeAdaptError(f"vLLM returned no log-prob for prompt position {pos}")
        lp = entry[token_ids[pos]]
        total += float(getattr(lp, "logprob", lp))
    return total


@BACKENDS.register("vllm")
class VLLMBackend:
    """`VLLMBackend(path, dtype="float32", **llm_kwargs)`: batched generation with vLLM's
    scheduler (requests are all submitted at once; vLLM does its own batching)."""

    def __init__(
        self,
        ref: str,
        dtype: str = "auto",
        *,
        trust_remote_code: bool = False,
        max_model_len: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise SafeAdaptError("the vllm backend needs the optional extra: pip install 'safeadapt[vllm]'") from None
        from pathlib import Path

        from vllm import LLM

        self.ref = ref
        kw = dict(model=ref, dtype=dtype, trust_remote_code=trust_remote_code, **llm_kwargs)
        if max_model_len:
            kw["max_model_len"] = max_model_len
        self.llm = LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()
        weights = hash_path(ref, max_bytes=1 << 20) if Path(ref).exists() else ref
        self.fingerprint = stable_hash({"backend": "vllm", "weights": weights, "dtype": dtype})
        cfg = self.llm.llm_engine.model_config
        self.supports_images = bool(getattr(cfg, "is_multimodal_model", False))

    def _render(self, msgs: list[dict[str, Any]]) -> str:
        return self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)

    def generate(self, requests: list[GenRequest], decoding: DecodingConfig) -> list[str]:
        from vllm import SamplingParams

        inputs = [prompt_input(r, self._render) for r in requests]
        params = [SamplingParams(**sampling_kwargs(decoding, r.key)) for r in requests]
        outs = self.llm.generate(inputs, params, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outs]

    def loglikelihood(self, requests: list[LoglikRequest]) -> list[float]:
        from vllm import SamplingParams

        inputs, spans = [], []
        for r in requests:
            if r.images:
                raise NotImplementedError("vLLM backend: log-likelihood with images is not supported")
            if r.raw_prompt is not None:
                ctx = self.tokenizer(r.raw_prompt)["input_ids"]  # with the tokenizer's BOS
            else:
                ctx = self.tokenizer(self._render(r.messages), add_special_tokens=False)["input_ids"]
            cont = self.tokenizer(r.continuation, add_special_tokens=False)["input_ids"]
            inputs.append({"prompt_token_ids": list(ctx) + list(cont)})
            spans.append(len(ctx))
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self.llm.generate(inputs, params, use_tqdm=False)
        return [
            continuation_logprob(o.prompt_logprobs, i["prompt_token_ids"], n) for o, i, n in zip(outs, inputs, spans)
        ]
