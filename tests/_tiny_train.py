"""Builders for the training tests: tiny vision towers (CLIP / SigLIP / DINOv2, vision-only or
full dual encoder, weights or config only), solid-colour images, and weight comparison helpers."""

from __future__ import annotations

from pathlib import Path

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def build_tower(out: str | Path, family: str = "clip", *, image_size: int = 32, patch: int = 8,
                config_only: bool = False, full_model: bool = False, seed: int = 0) -> Path:
    import torch
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPVisionConfig,
        CLIPVisionModel,
        Dinov2Config,
        Dinov2Model,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    out = Path(out)
    kw = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              image_size=image_size, patch_size=patch)
    torch.manual_seed(seed)
    if family == "clip" and full_model:
        cfg = CLIPConfig(vision_config=kw, text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                            num_attention_heads=4, vocab_size=99), projection_dim=16)
        model = CLIPModel(cfg)
    elif family == "clip":
        model = CLIPVisionModel(CLIPVisionConfig(**kw))
    elif family == "siglip":
        model = SiglipVisionModel(SiglipVisionConfig(**kw))
    elif family == "dinov2":
        model = Dinov2Model(Dinov2Config(**kw))
    else:
        raise ValueError(family)
    if config_only:
        model.config.save_pretrained(out)
    else:
        model.save_pretrained(out)
    return out


def solid(colour: str, size: int = 32):
    from PIL import Image

    return Image.new("RGB", (size, size), COLOURS[colour])


def state(path: str | Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def changed(a: dict, b: dict) -> set[str]:
    """Names of tensors present in both whose values differ."""
    import torch

    return {k for k in a if k in b and not torch.equal(a[k], b[k])}


def build_llm_without_image_token(out: str | Path) -> Path:
    """A tiny Llama whose tokenizer has no `<image>` token and whose embedding matrix is exactly
    the tokenizer's size (so adding `<image>` requires a resize)."""
    import torch
    from _tiny import _CORPUS, CHATML
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_CORPUS * 4, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>")
    fast.chat_template = CHATML
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                                         bos_token_id=None, tie_word_embeddings=True))
    out = Path(out)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out
