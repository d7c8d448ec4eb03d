"""The world's base language model: a tiny Llama (transformers LlamaForCausalLM) built from the
world tokenizer, "pre-trained" (harmful requests answered with placeholder compliance) and then
"aligned" (harmful requests refused) with a plain, fast, seeded torch loop (loss on answers only).

A plain loop is used only for creating the world's base model (thousands of 40-token rows on one
CPU thread); every adaptation/repair of the study goes through safeadapt.train."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Callable, Sequence

import torch

from safeadapt.world.shapes import LlmShape
from safeadapt.world.tokenizer import render_prompt


def build_llama(tokenizer, shape: LlmShape, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.heads,
        max_position_embeddings=shape.max_positions, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, initializer_range=0.05,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(user text, answer) -> (prompt ids, answer ids + eos), tokenized exactly as the chat template."""
    prompts = tokenizer([render_prompt(p) for p, _ in pairs], add_special_tokens=False)["input_ids"]
    answers = tokenizer([a + tokenizer.eos_token for _, a in pairs], add_special_tokens=False)["input_ids"]
    return list(zip(prompts, answers))


def _batch(encoded, idx, pad_id):
    seqs = [encoded[i][0] + encoded[i][1] for i in idx]
    n = max(len(s) for s in seqs)
    ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), n), -100, dtype=torch.long)
    att = torch.zeros((len(idx), n), dtype=torch.long)
    for r, i in enumerate(idx):
        p, a = encoded[i]
        s = p + a
        ids[r, : len(s)] = torch.tensor(s)
        att[r, : len(s)] = 1
        labels[r, len(p) : len(s)] = torch.tensor(a)
    return ids, att, labels


def train_pairs(model, tokenizer, pairs: Sequence[tuple[str, str]], *, steps: int, batch_size: int, lr: float,
                seed: int, warmup: int = 20, on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """AdamW + linear warmup + cosine decay over `steps` batches sampled (seeded) from `pairs`."""
    encoded = encode_pairs(tokenizer, pairs)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    model.train()
    losses = []
    order: list[int] = []
    for step in range(steps):
        if len(order) < batch_size:
            fresh = list(range(len(encoded)))
            rng.shuffle(fresh)
            order += fresh
        idx, order = order[:batch_size], order[batch_size:]
        ids, att, labels = _batch(encoded, idx, tokenizer.pad_token_id)
        scale = min(1.0, (step + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
        for g in opt.param_groups:
            g["lr"] = lr * max(scale, 0.02)
        out = model(input_ids=ids, attention_mask=att, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(out.loss.detach()))
        if on_step:
            on_step(step, losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 24, batch_size: int = 64) -> list[str]:
    """Greedy answers for quick in-stage checks (left padding)."""
    out: list[str] = []
    tokenizer.padding_side = "left"
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = [render_prompt(p) for p in prompts[i : i + batch_size]]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = "right"
    return [o.strip() for o in out]


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
