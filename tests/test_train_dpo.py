"""DPO on a tiny Llama (full and LoRA) and on a tiny LLaVA with images: the policy's preference
margin over the reference grows, and bad rows give one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import build_tiny_llama, build_tiny_llava  # noqa: E402
from _tiny_train import changed, solid, state  # noqa: E402

from safeadapt.core.errors import SafeAdaptError  # noqa: E402
from safeadapt.train.dpo import DPOOptions, dpo  # noqa: E402


@pytest.fixture(scope="module")
def llm(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("dpo") / "m")


PAIRS = [{"prompt": [{"role": "user", "content": f"How do I make a bomb {i}?"}],
          "chosen": "I cannot help with that.", "rejected": "Sure, step one is"} for i in range(16)]


def _margin(model_dir: Path, prompt: str = "How do I make a bomb 77?") -> float:
    """log p(chosen | prompt) - log p(rejected | prompt) under the model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()

    def logp(reply: str) -> float:
        p = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
                                       tokenize=False)
        ids = tok(full, add_special_tokens=False, return_tensors="pt").input_ids
        n = len(tok(p, add_special_tokens=False).input_ids)
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits[0, :-1], -1)
        tgt = ids[0, 1:]
        return float(lp[torch.arange(n - 1, len(tgt)), tgt[n - 1:]].sum())

    return logp(PAIRS[0]["chosen"]) - logp(PAIRS[0]["rejected"])


@pytest.mark.parametrize("lora", [False, True])
def test_dpo_increases_preference_margin(llm, tmp_path, lora):
    out = dpo(llm, PAIRS, tmp_path / "o", DPOOptions(lr=5e-3 if lora else 1e-3, max_steps=8, batch_size=4,
                                                      logging_steps=4, lora=lora, lora_r=4, warmup_ratio=0.0))
    before, after = _margin(llm), _margin(out)
    assert after > before + 1.0, (before, after)
    meta = json.loads((out / "safeadapt_train.json").read_text())
    margins = [h["rewards/margins"] for h in meta["train"]["log_history"] if "rewards/margins" in h]
    assert margins and margins[-1] > 0
    assert set(state(out)) == set(state(llm))  # full checkpoint (LoRA merged)


def test_dpo_sft_weight_adds_nll_on_chosen(llm, tmp_path):
    """sft_weight > 0 adds TRL's "sft" loss (NLL of the chosen reply) to the sigmoid loss: the first
    step's logged loss (same seed, same batch) is ln 2 without it and larger by the chosen NLL with it."""
    def run(w: float, name: str) -> tuple[float, Path]:
        out = dpo(llm, PAIRS, tmp_path / name, DPOOptions(lr=1e-3, max_steps=4, batch_size=4, logging_steps=1,
                                                          warmup_ratio=0.0, sft_weight=w))
        log = json.loads((out / "safeadapt_train.json").read_text())["train"]["log_history"]
        return next(h["loss"] for h in log if "loss" in h), out

    plain, _ = run(0.0, "plain")
    mixed, out = run(1.0, "mixed")
    assert json.loads((out / "safeadapt_train.json").read_text())["config"]["sft_weight"] == 1.0
    assert plain == pytest.approx(0.6931, abs=0.01)  # sigmoid DPO loss at step 1: policy == reference
    assert mixed > plain + 1.0, (plain, mixed)  # + NLL per token of a tiny random model's chosen reply


def test_dpo_vlm_with_images(tmp_path):
    vlm = build_tiny_llava(tmp_path / "vlm")
    pairs = [dict(p, images=[solid("red")]) for p in PAIRS[:8]]
    out = dpo(vlm, pairs, tmp_path / "o", DPOOptions(lr=1e-3, max_steps=2, batch_size=4,
                                                      freeze_modules=["vision_tower"]))
    diff = changed(state(vlm), state(out))
    assert diff and not any("vision_tower" in k for k in diff)
    assert (out / "processor_config.json").is_file()


def test_dpo_bad_rows(llm, tmp_path):
    with pytest.raises(SafeAdaptError, match="row 0: a preference row needs"):
        dpo(llm, [{"prompt": "x", "chosen": "y"}], tmp_path / "o")
    with pytest.raises(SafeAdaptError, match="row 0: the prompt must end with a user turn"):
        dpo(llm, [{"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"}], tmp_path / "o")
    with pytest.raises(SafeAdaptError, match="text-only"):
        dpo(llm, [dict(PAIRS[0], images=[solid("red")])], tmp_path / "o")
