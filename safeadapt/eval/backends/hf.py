"""transformers backend: batched chat generation (left padding, length-sorted batches, KV cache,
greedy or seeded sampling, LLaVA-style images through the processor) and multiple-choice
log-likelihoods, for any causal LM / image-text-to-text checkpoint loaded by safeadapt.io.

Determinism: greedy decoding is deterministic. Sampling draws Gumbel noise from a generator seeded
by (decoding.seed, request key) per row and step, so a request's sample does not depend on which
batch it lands in or its position there (up to floating-point differences from padding)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import hash_path, stable_hash
from safeadapt.core.runtime import set_threads
from safeadapt.eval.backends.common import derive_seed, load_image, render_chat
from safeadapt.eval.backends.registry import BACKENDS
from safeadapt.eval.types import DecodingConfig, GenRequest, LoglikRequest

#: bytes hashed from the head and tail of each large weight file for the fingerprint
FINGERPRINT_BYTES = 1 << 20


def _load(ref: str, dtype: str, allow_pickle: bool, trust_remote_code: bool) -> tuple[Any, Any, Path | None]:
    """(model, processor_or_tokenizer, path to hash) via safeadapt.io."""
    from safeadapt.io.models import load_pretrained
    from safeadapt.io.resolve import resolve_model_ref

    mref = resolve_model_ref(str(ref), allow_pickle=allow_pickle)
    model, proc = load_pretrained(str(ref), dtype=dtype, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    path = Path(mref.path)
    if mref.gguf_file and path.is_dir():
        path = path / mref.gguf_file
    return model, proc, path


def _param_fingerprint(model: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = p.detach().float().flatten()
        h.update(t[: 4096].numpy().tobytes())
        h.update(str(tuple(p.shape)).encode())
        h.update(f"{float(t.sum()):.6e}".encode())
    return h.hexdigest()


class _GumbelSampler:
    """Logits processor turning greedy decoding into per-row seeded sampling: temperature, top-p,
    then Gumbel noise from one generator per row, so argmax == a sample from softmax."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        import torch

        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = float(temperature)
        self.top_p = float(top_p)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            sorted_logits, idx = torch.sort(scores, descending=True, dim=-1)
            cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            remove = cum - torch.softmax(sorted_logits, dim=-1) >= self.top_p  # keep the token crossing top_p
            remove[..., 0] = False
            scores = scores.masked_fill(remove.scatter(-1, idx, remove), float("-inf"))
        logp = torch.log_softmax(scores, dim=-1)
        u = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.gens]).to(scores.device)
        gumbel = -torch.log(-torch.log(u.clamp_(1e-20, 1.0 - 1e-7)))
        return logp + gumbel


@BACKENDS.register("hf")
class HFBackend:
    """Generation + log-likelihood through transformers.

    `threads`: torch intra-op threads, set on load and before each call. Default None keeps
    torch's setting (one thread per core), right for a dedicated machine: on a quiet 2-core box
    bench/generation.py measured 2 threads 1.3-1.8x faster than 1 at every batch size. When
    processes share cores pass threads=1: under load 2 threads ran 3.6x slower than 1 at batch 1
    (spinning workers fight the other jobs); see docs/benchmarks.md "Generation".
    `max_batch` caps the batch size (decoding.batch_size is used up to it). `min_new_tokens`
    forces a fixed generation length (benchmarks only)."""

    def __init__(
        self,
        ref: str | os.PathLike | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch: int = 16,
        *,
        model: Any = None,
        processor: Any = None,
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        min_new_tokens: int = 0,
    ) -> None:
        import torch

        self.threads = threads
        set_threads(threads)
        self.dtype = dtype
        self.max_batch = max(1, int(max_batch))
        self.min_new_tokens = int(min_new_tokens)
        if model is None:
            if ref is None:
                raise SafeAdaptError("HFBackend needs a model reference or a loaded model")
            model, processor, path = _load(str(ref), dtype, allow_pickle, trust_remote_code)
            weights_fp = (
                hash_path(path, max_bytes=FINGERPRINT_BYTES)
                if path is not None and path.exists()
                else stable_hash(str(ref))
            )
        else:
            if processor is None:
                raise SafeAdaptError("HFBackend(model=...) also needs processor= (tokenizer or processor)")
            weights_fp = _param_fingerprint(model)
        self.ref = str(ref) if ref is not None else getattr(model, "name_or_path", "in-memory")
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        #: a processor with an image processor = a VLM that accepts images
        self.supports_images = getattr(processor, "image_processor", None) is not None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.fingerprint = stable_hash({"backend": "hf", "weights": weights_fp, "dtype": dtype})
        self.eos_ids = self._eos_ids()
        self._torch = torch

    # ------------------------------------------------------------------ prompts
    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gc = getattr(self.model, "generation_config", None)
        for src in (getattr(gc, "eos_token_id", None), self.tokenizer.eos_token_id):
            if src is None:
                continue
            for i in src if isinstance(src, (list, tuple)) else [src]:
                if int(i) not in ids:
                    ids.append(int(i))
        for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
            tid = self.tokenizer.convert_tokens_to_ids(tok) if tok in self.tokenizer.get_vocab() else None
            if tid is not None and tid not in ids:
                ids.append(int(tid))
        return ids

    def render(self, messages: list[dict[str, str]], n_images: int = 0) -> str:
        """The chat prompt text up to and including the assistant header."""
        if n_images and not self.supports_images:
            raise SafeAdaptError(f"model {self.ref} is text-only but the request has {n_images} image(s)")
        return render_chat(self.processor, messages, n_images)

    def _prompt_of(self, r: GenRequest | LoglikRequest) -> tuple[str, bool]:
        """(text, add_special_tokens): a raw classifier prompt is tokenized with the tokenizer's
        own special tokens (its BOS); a rendered chat template already carries them."""
        if r.raw_prompt is not None:
            if r.images:
                raise SafeAdaptError(f"request {r.key}: a raw prompt cannot carry images")
            return r.raw_prompt, True
        return self.render(r.messages, len(r.images)), False

    def _encode(self, texts: list[str], images: list[list[Any]], padding_side: str,
                special: bool = False) -> dict[str, Any]:
        self.tokenizer.padding_side = padding_side
        flat = [load_image(im) for ims in images for im in ims]
        if flat:
            enc = self.processor(text=texts, images=flat, return_tensors="pt", padding=True, add_special_tokens=False)
        else:
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=special)
        return dict(enc)

    # ------------------------------------------------------------------ generation
    def generate(self, requests: list[GenRequest], decoding: DecodingConfig) -> list[str]:
        torch = self._torch
        set_threads(self.threads)
        if not requests:
            return []
        prompts = [self._prompt_of(r) for r in requests]
        texts = [t for t, _ in prompts]
        lengths = [len(self.tokenizer(t, add_special_tokens=sp)["input_ids"]) for t, sp in prompts]
        # raw prompts and chat prompts are batched apart (they differ in added special tokens)
        order = sorted(range(len(requests)), key=lambda i: (prompts[i][1], -lengths[i], i))
        bs = max(1, min(int(decoding.batch_size), self.max_batch))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < bs and prompts[batches[-1][0]][1] == prompts[i][1]:
                batches[-1].append(i)
            else:
                batches.append([i])
        out: list[str | None] = [None] * len(requests)
        for idx in batches:
            enc = self._encode([texts[i] for i in idx], [requests[i].images for i in idx], "left", prompts[idx[0]][1])
            kwargs: dict[str, Any] = dict(
                max_new_tokens=int(decoding.max_new_tokens),
                do_sample=False,
                eos_token_id=self.eos_ids or None,
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
                temperature=None,
                top_p=None,
                top_k=None,
            )
            if self.min_new_tokens:
                kwargs["min_new_tokens"] = min(self.min_new_tokens, int(decoding.max_new_tokens))
            if decoding.temperature > 0:
                from transformers import LogitsProcessorList

                seeds = [derive_seed(decoding.seed, requests[i].key) for i in idx]
                kwargs["logits_processor"] = LogitsProcessorList(
                    [_GumbelSampler(seeds, decoding.temperature, decoding.top_p)]
                )
            with torch.inference_mode():
                gen = self.model.generate(**enc, **kwargs)
            new = gen[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                ids = new[row].tolist()
                for j, t in enumerate(ids):
                    if t in self.eos_ids:
                        ids = ids[:j]
                        break
                out[i] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return [o or "" for o in out]

    # ------------------------------------------------------------------ log-likelihood
    def loglikelihood(self, requests: list[LoglikRequest]) -> list[float]:
        """Sum of log-probs of the continuation tokens after the chat prompt + assistant header
        (or after a raw prompt, tokenized with the tokenizer's special tokens)."""
        torch = self._torch
        set_threads(self.threads)
        if not requests:
            return []
        items = []
        specials = []
        for r in requests:
            ctx, special = self._prompt_of(r)
            cont = self.tokenizer(r.continuation, add_special_tokens=False)["input_ids"]
            if not cont:
                raise SafeAdaptError(f"empty continuation for log-likelihood request {r.key}")
            items.append((ctx, cont, r.images))
            specials.append(special)
        ctx_len = [len(self.tokenizer(c, add_special_tokens=sp)["input_ids"]) for (c, _, _), sp in zip(items, specials)]
        # requests with images and without are batched apart (pixel tensors must stack)
        order = sorted(range(len(items)), key=lambda i: (len(items[i][2]), -(ctx_len[i] + len(items[i][1])), i))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.max_batch and len(items[batches[-1][0]][2]) == len(items[i][2]):
                batches[-1].append(i)
            else:
                batches.append([i])
        out: list[float] = [0.0] * len(items)
        pad = self.tokenizer.pad_token_id
        for idx in batches:
            seqs, spans, extra = [], [], []
            for i in idx:
                ctx, cont, imgs = items[i]
                enc = self._encode([ctx], [imgs], "right", specials[i])
                ids = enc.pop("input_ids")[0].tolist()
                enc.pop("attention_mask", None)
                spans.append((len(ids), len(cont)))
                seqs.append(ids + cont)
                extra.append(enc)
            L = max(len(s) for s in seqs)
            input_ids = torch.full((len(seqs), L), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), L), dtype=torch.long)
            for row, s in enumerate(seqs):
                input_ids[row, : len(s)] = torch.tensor(s)
                mask[row, : len(s)] = 1
            kwargs: dict[str, Any] = {}
            for key in extra[0]:
                vals = [e[key] for e in extra if key in e]
                kwargs[key] = torch.cat(vals, dim=0)
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, attention_mask=mask, **kwargs).logits
            for row, (i, (c, n)) in enumerate(zip(idx, spans)):
                lp = torch.log_softmax(logits[row, c - 1 : c - 1 + n].float(), dim=-1)
                tgt = input_ids[row, c : c + n]
                out[i] = float(lp.gather(-1, tgt[:, None]).sum())
        return out

    def next_token_logprobs(self, requests: list[LoglikRequest], candidates: Sequence[str]) -> list[list[float]]:
        """Per request, the log-prob of each one-token `candidates[k]` as the token right after the
        prompt (the requests' `continuation` is ignored): one forward per prompt, where
        `loglikelihood` would run one per candidate. A candidate that is not one token is an error."""
        torch = self._torch
        set_threads(self.threads)
        cand = []
        for c in candidates:
            ids = self.tokenizer(c, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise SafeAdaptError(f"next-token candidate {c!r} is {len(ids)} tokens of {self.ref}'s tokenizer, "
                                     "not one")
            cand.append(ids[0])
        seqs = []
        for r in requests:
            if r.images:
                raise SafeAdaptError(f"request {r.key}: next-token log-probs with images are not supported")
            text, special = self._prompt_of(r)
            seqs.append(self.tokenizer(text, add_special_tokens=special)["input_ids"])
        out: list[list[float]] = [[] for _ in seqs]
        order = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i]), i))
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.max_batch):
            idx = order[start : start + self.max_batch]
            L = max(len(seqs[i]) for i in idx)
            input_ids = torch.full((len(idx), L), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), L), dtype=torch.long)
            for row, i in enumerate(idx):  # right padding: each row's last real position is len - 1
                input_ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[row, : len(seqs[i])] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits
            for row, i in enumerate(idx):
                lp = torch.log_softmax(logits[row, len(seqs[i]) - 1].float(), dim=-1)
                out[i] = [float(lp[t]) for t in cand]
        return out
