"""Tiny, random, fully local checkpoints (a few KB) for tests and benchmarks of checkpoint I/O and
merging: a LlamaForCausalLM / Qwen2ForCausalLM with a word-level tokenizer and chat template, and a
LLaVA (tiny Llama text tower + tiny CLIP vision tower) with its LlavaProcessor. Nothing is fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] if m['content'] is string else '' }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]


def tiny_tokenizer(vocab_size: int = 64, *, image_token: bool = False) -> Any:
    """Word-level fast tokenizer: specials, then `w0..wN`, then `<image>` last when asked."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(SPECIALS)
    n_words = vocab_size - len(words) - (1 if image_token else 0)
    words += [f"w{i}" for i in range(n_words)]
    if image_token:
        words.append("<image>")
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tok.chat_template = CHAT_TEMPLATE
    if image_token:
        tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tok


def _text_config(arch: str, vocab_size: int, hidden: int, layers: int) -> Any:
    from transformers import LlamaConfig, Qwen2Config

    kw = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
              num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2, pad_token_id=3)
    if arch == "llama":
        return LlamaConfig(**kw)
    if arch == "qwen2":
        return Qwen2Config(**kw)
    raise ValueError(arch)


def build_tiny_llm(out_dir: str | Path, *, seed: int = 0, vocab_size: int = 64, hidden: int = 16, layers: int = 3,
                   arch: str = "llama", dtype: str = "float32") -> Path:
    """Random tiny causal LM + tokenizer saved as an HF directory."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_text_config(arch, vocab_size, hidden, layers))
    model.to(getattr(torch, dtype))
    out = Path(out_dir)
    model.save_pretrained(out)
    tiny_tokenizer(vocab_size).save_pretrained(out)
    return out


def build_tiny_llava(out_dir: str | Path, *, seed: int = 0, vocab_size: int = 64, hidden: int = 16, layers: int = 3,
                     image_size: int = 32, patch: int = 16) -> Path:
    """Random tiny LLaVA (Llama text tower + CLIP vision tower) + LlavaProcessor."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(seed)
    vc = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                          image_size=image_size, patch_size=patch, projection_dim=16)
    tc = _text_config("llama", vocab_size, hidden, layers)
    cfg = LlavaConfig(vision_config=vc, text_config=tc, image_token_index=vocab_size - 1,
                      image_seq_length=(image_size // patch) ** 2, vision_feature_select_strategy="full")
    model = LlavaForConditionalGeneration(cfg)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok = tiny_tokenizer(vocab_size, image_token=True)
    ip = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=patch, chat_template=CHAT_TEMPLATE,
                          vision_feature_select_strategy="full", num_additional_image_tokens=1)
    proc.save_pretrained(out)
    return out


def build_tiny_gguf(
    path: str | Path, *, seed: int = 0, vocab_size: int = 64, hidden: int = 16, layers: int = 2
) -> dict[str, Any]:
    """Write a tiny llama-architecture GGUF (F32, no quantisation) with the gguf package.

    Returns the HF-named tensors that GGUF stores unpermuted (norms, MLP, embeddings, output), so a
    reader can be checked value for value; q/k projections are stored permuted as llama.cpp does."""
    import numpy as np
    from gguf import GGUFWriter

    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(2 * hidden)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(hidden // 2)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab_size)
    w.add_tokenizer_model("llama")
    tokens = SPECIALS[:3] + [f"w{i}" for i in range(vocab_size - 3)]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * vocab_size)
    w.add_token_types([3, 3, 3] + [1] * (vocab_size - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def t(*shape: int) -> Any:
        return rng.standard_normal(shape).astype(np.float32)

    ref: dict[str, Any] = {}

    def add(gguf_name: str, hf_name: str | None, arr: Any) -> None:
        w.add_tensor(gguf_name, arr)
        if hf_name:
            ref[hf_name] = arr

    add("token_embd.weight", "model.embed_tokens.weight", t(vocab_size, hidden))
    for i in range(layers):
        add(f"blk.{i}.attn_norm.weight", f"model.layers.{i}.input_layernorm.weight", t(hidden))
        add(f"blk.{i}.attn_q.weight", None, t(hidden, hidden))
        add(f"blk.{i}.attn_k.weight", None, t(hidden, hidden))
        add(f"blk.{i}.attn_v.weight", f"model.layers.{i}.self_attn.v_proj.weight", t(hidden, hidden))
        add(f"blk.{i}.attn_output.weight", f"model.layers.{i}.self_attn.o_proj.weight", t(hidden, hidden))
        add(f"blk.{i}.ffn_norm.weight", f"model.layers.{i}.post_attention_layernorm.weight", t(hidden))
        add(f"blk.{i}.ffn_gate.weight", f"model.layers.{i}.mlp.gate_proj.weight", t(2 * hidden, hidden))
        add(f"blk.{i}.ffn_up.weight", f"model.layers.{i}.mlp.up_proj.weight", t(2 * hidden, hidden))
        add(f"blk.{i}.ffn_down.weight", f"model.layers.{i}.mlp.down_proj.weight", t(hidden, 2 * hidden))
    add("output_norm.weight", "model.norm.weight", t(hidden))
    add("output.weight", "lm_head.weight", t(vocab_size, hidden))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return ref
