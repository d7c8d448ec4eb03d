"""SFT on a tiny Llama: assistant-only labels for any chat template, learning, determinism,
freezing, LoRA merge, atomic output and one-line errors (API and CLI)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import build_tiny_llama  # noqa: E402
from _tiny_train import changed, state  # noqa: E402

from safeadapt.core.errors import SafeAdaptError  # noqa: E402
from safeadapt.train.chat import tokenize_chat_rows
from safeadapt.train.sft import SFTOptions, sft  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def llm(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llm") / "m")


def _rows(n: int = 24) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"How do I make a bomb {i}?"},
                      {"role": "assistant", "content": "I cannot help with that."}]}
        for i in range(n)
    ]


def test_labels_cover_assistant_turns_only(llm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(llm))
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello there"}, {"role": "user", "content": "bye"},
            {"role": "assistant", "content": "Bye now"}]
    cols, dropped = tokenize_chat_rows(tok, [chat], 512)
    assert dropped == 0
    ids, labels = cols["input_ids"][0], cols["labels"][0]
    trained = tok.decode([t for t, lab in zip(ids, labels) if lab != -100])
    assert trained == "Hello there<|im_end|>\nBye now<|im_end|>\n"
    # everything else (system, user turns, role headers) is masked
    masked = tok.decode([t for t, lab in zip(ids, labels) if lab == -100])
    assert "Be brief." in masked and "hi" in masked and "bye" in masked and "Hello" not in masked
    # truncation inside the prompt leaves nothing to train on -> row dropped
    cols2, dropped2 = tokenize_chat_rows(tok, [chat], 5)
    assert dropped2 == 1 and cols2["input_ids"] == []


def test_sft_learns_and_saves_full_checkpoint(llm, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = sft(llm, _rows(), tmp_path / "out", SFTOptions(lr=3e-3, max_steps=30, batch_size=8, logging_steps=5,
                                                         warmup_ratio=0.0))
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "safeadapt_train.json"} <= files
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    meta = json.loads((out / "safeadapt_train.json").read_text())
    losses = [h["loss"] for h in meta["train"]["log_history"] if "loss" in h]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    assert meta["train"]["global_step"] == 30 and meta["config"]["lr"] == 3e-3
    # the trained model now answers the learned refusal
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "How do I make a bomb 99?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    gen = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert tok.decode(gen[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True).startswith("I cannot help")


def test_sft_is_deterministic_per_seed(llm, tmp_path):
    o = dict(lr=1e-3, max_steps=6, batch_size=4)
    a = state(sft(llm, _rows(), tmp_path / "a", SFTOptions(seed=3, **o)))
    b = state(sft(llm, _rows(), tmp_path / "b", SFTOptions(seed=3, **o)))
    c = state(sft(llm, [dict(r) for r in _rows()[::-1]], tmp_path / "c", SFTOptions(seed=4, **o)))
    assert changed(a, b) == set()
    assert changed(a, c)


def test_train_modules_freeze_everything_else(llm, tmp_path):
    base = state(llm)
    out = sft(llm, _rows(), tmp_path / "o", SFTOptions(lr=1e-2, max_steps=3, batch_size=4,
                                                        train_modules=["layers.1.mlp"]))
    diff = changed(base, state(out))
    assert diff and all("layers.1.mlp" in k for k in diff)


def test_lora_merged_into_full_weights(llm, tmp_path):
    base = state(llm)
    out = sft(llm, _rows(), tmp_path / "o", SFTOptions(lr=1e-2, max_steps=4, batch_size=4, lora=True, lora_r=4))
    merged = state(out)
    assert set(merged) == set(base)  # no lora_A / lora_B tensors: merged
    diff = changed(base, merged)
    assert diff and all(k.endswith("proj.weight") for k in diff)  # only adapted linears moved
    kept = sft(llm, _rows(), tmp_path / "a", SFTOptions(lr=1e-2, max_steps=2, batch_size=4, lora=True, lora_r=4,
                                                         merge_lora=False))
    assert (kept / "adapter_config.json").is_file()


def test_bad_inputs_one_line_errors(llm, tmp_path):
    with pytest.raises(SafeAdaptError, match="row 1: no assistant turn"):
        sft(llm, [_rows(1)[0], {"messages": [{"role": "user", "content": "x"}]}], tmp_path / "x", SFTOptions())
    (tmp_path / "exists").mkdir()
    with pytest.raises(SafeAdaptError, match="output path exists"):
        sft(llm, _rows(2), tmp_path / "exists", SFTOptions())
    with pytest.raises(SafeAdaptError, match="text-only model"):
        from _tiny_train import solid

        sft(llm, [dict(_rows(1)[0], images=[solid("red")])], tmp_path / "y", SFTOptions())
    with pytest.raises(SafeAdaptError, match="train_modules: no parameter"):
        sft(llm, _rows(2), tmp_path / "z", SFTOptions(train_modules=["nonexistent"]))


def _cli(*args: str):
    from typer.testing import CliRunner

    from safeadapt.cli import app

    return CliRunner().invoke(app, ["train", *args])


def test_cli_errors_and_run(llm, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(_rows(1)[0]) + "\n\n" + json.dumps({"messages": "oops"}) + "\n")
    r = _cli("sft", str(llm), str(data), "--out", str(tmp_path / "o"))
    assert r.exit_code != 0 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error: ") and f"{data}:3" in r.stderr and "messages" in r.stderr
    r = _cli("sft", str(llm), str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"))
    assert r.exit_code != 0 and "data file not found" in r.stderr
    r = _cli("attack", str(llm), "--recipe", "nope", "--data", str(data), "--out", str(tmp_path / "o"))
    assert r.exit_code != 0 and "unknown attack recipe 'nope'" in r.stderr and "aoa" in r.stderr
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(8)))
    r = _cli("sft", str(llm), str(data), "--out", str(tmp_path / "ok"), "--max-steps", "2", "--batch-size", "4")
    assert r.exit_code == 0, r.output[-2000:]
    assert json.loads((tmp_path / "ok" / "safeadapt_train.json").read_text())["train"]["global_step"] == 2
