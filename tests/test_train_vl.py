"""LLaVA assembly from a tiny Llama + CLIP / SigLIP / DINOv2 towers, and the two-stage VL
adaptation: what each stage trains, what it freezes, and resuming after stage 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import build_tiny_llama  # noqa: E402
from _tiny_train import build_tower, changed, solid, state  # noqa: E402

from safeadapt.core.errors import SafeAdaptError  # noqa: E402
from safeadapt.train.sft import SFTOptions  # noqa: E402
from safeadapt.train.vl import build_llava, vl_adapt  # noqa: E402


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("vl")
    return {"llm": build_tiny_llama(root / "llm"), "root": root}


def _forward_ok(model_dir: Path, colour: str = "red") -> int:
    """Run the processor + model on one image chat; return the number of image tokens inserted."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    proc = AutoProcessor.from_pretrained(str(model_dir))
    model = LlavaForConditionalGeneration.from_pretrained(str(model_dir)).eval()
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True)
    enc = proc(images=[solid(colour)], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    assert out.logits.shape[1] == enc["input_ids"].shape[1]
    return int((enc["input_ids"] == model.config.image_token_id).sum())


@pytest.mark.parametrize(
    "family,full,config_only,expect_tokens,strategy",
    [
        ("clip", False, False, 16, "default"),  # 4x4 patches, CLS dropped
        ("clip", True, False, 16, "default"),  # full CLIPModel: vision part taken
        ("siglip", False, False, 16, "full"),  # no CLS token
        ("dinov2", False, True, 16, "default"),  # config only: random tower
    ],
)
def test_build_llava_towers(parts, tmp_path, family, full, config_only, expect_tokens, strategy):
    tower = build_tower(tmp_path / "tower", family, full_model=full, config_only=config_only)
    out = build_llava(parts["llm"], tower, tmp_path / "llava")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["image_seq_length"] == expect_tokens and cfg["vision_feature_select_strategy"] == strategy
    assert _forward_ok(out) == expect_tokens
    meta = json.loads((out / "safeadapt_build.json").read_text())["config"]
    assert meta["tower_weights_loaded"] is (not config_only) and meta["family"] == family
    # the language tower is copied verbatim, the vision tower too when it had weights
    from transformers import AutoModel, AutoModelForCausalLM, LlavaForConditionalGeneration

    vlm = LlavaForConditionalGeneration.from_pretrained(str(out))
    llm = AutoModelForCausalLM.from_pretrained(str(parts["llm"]))
    lm_state = vlm.model.language_model.state_dict()
    for k, v in llm.model.state_dict().items():
        assert lm_state[k].equal(v), k
    assert vlm.lm_head.weight.equal(llm.lm_head.weight)
    if not config_only:
        tw = AutoModel.from_pretrained(str(tower))
        tw_state = (tw.vision_model if full else tw).state_dict()
        vt_state = vlm.model.vision_tower.state_dict()
        assert tw_state.keys() == vt_state.keys()
        assert all(vt_state[k].equal(tw_state[k]) for k in tw_state)


def test_build_llava_adds_image_token_and_keeps_chat_format(parts, tmp_path):
    from _tiny_train import build_llm_without_image_token
    from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer

    llm_dir = build_llm_without_image_token(tmp_path / "llm")
    tok = AutoTokenizer.from_pretrained(str(llm_dir))
    assert "<image>" not in tok.get_vocab()
    n_before = AutoModelForCausalLM.from_pretrained(str(llm_dir)).get_input_embeddings().weight.shape[0]
    assert n_before == len(tok)
    out = build_llava(llm_dir, build_tower(tmp_path / "t", "clip"), tmp_path / "llava")
    cfg = json.loads((out / "config.json").read_text())
    proc = AutoProcessor.from_pretrained(str(out))
    assert cfg["image_token_index"] == proc.tokenizer.convert_tokens_to_ids("<image>")
    assert cfg["image_token_index"] == n_before and cfg["text_config"]["vocab_size"] == n_before + 1
    assert _forward_ok(out) == 16
    chat = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    assert proc.apply_chat_template(chat) == tok.apply_chat_template(chat, tokenize=False)


def test_build_llava_rejects_bad_inputs(parts, tmp_path):
    (tmp_path / "nt").mkdir()
    with pytest.raises(SafeAdaptError, match="no config.json"):
        build_llava(parts["llm"], tmp_path / "nt", tmp_path / "o")
    with pytest.raises(SafeAdaptError, match="image_seq_length=7 does not match"):
        build_llava(parts["llm"], build_tower(tmp_path / "t", "clip"), tmp_path / "o", image_seq_length=7)


def _instruct(n: int) -> list[dict]:
    cols = ["red", "green", "blue"]
    return [{"messages": [{"role": "user", "content": "<image>\nWhat colour is it?"},
                          {"role": "assistant", "content": cols[i % 3]}], "images": [solid(cols[i % 3])]}
            for i in range(n)]


def test_vl_adapt_two_stages(parts, tmp_path):
    base = build_llava(parts["llm"], build_tower(tmp_path / "t", "clip"), tmp_path / "llava")
    caps = [{"images": [solid(c)], "caption": f"a {c} square"} for c in ["red", "green", "blue"] * 4]
    s1 = SFTOptions(lr=1e-2, max_steps=4, batch_size=4)
    s2 = SFTOptions(lr=1e-2, max_steps=4, batch_size=4)
    out = vl_adapt(base, caps, _instruct(12), tmp_path / "adapted", s1, s2)
    b, one, two = state(base), state(tmp_path / "adapted-stage1"), state(out)
    d1, d2 = changed(b, one), changed(one, two)
    assert d1 and all("multi_modal_projector" in k for k in d1)  # stage 1: projector only
    assert any("multi_modal_projector" in k for k in d2) and any("language_model" in k for k in d2)
    assert not any("vision_tower" in k for k in d2)  # stage 2: tower frozen
    m1 = json.loads((tmp_path / "adapted-stage1" / "safeadapt_train.json").read_text())
    assert m1["config"]["lr"] == 1e-2 and m1["config"]["train_modules"] == ["multi_modal_projector"]
    # rerun after a "kill" before stage 2: stage 1 is reused, not retrained
    stamp = (tmp_path / "adapted-stage1" / "model.safetensors").stat().st_mtime_ns
    import shutil

    shutil.rmtree(out)
    vl_adapt(base, caps, _instruct(12), tmp_path / "adapted", s1, s2)
    assert (tmp_path / "adapted-stage1" / "model.safetensors").stat().st_mtime_ns == stamp
    assert changed(two, state(out)) == set()  # same seed, same stage-2 result


def test_vlm_learns_image_dependent_answers(parts, tmp_path):
    """Stage 2 on a tiny VLM learns to name the colour of the image: the answer depends on pixels."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    base = build_llava(parts["llm"], build_tower(tmp_path / "t", "clip"), tmp_path / "llava")
    out = vl_adapt(base, [], _instruct(48), tmp_path / "a", None,
                   SFTOptions(lr=5e-3, max_steps=60, batch_size=12, warmup_ratio=0.0))
    proc = AutoProcessor.from_pretrained(str(out))
    model = LlavaForConditionalGeneration.from_pretrained(str(out)).eval()
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True)
    answers = {}
    for c in ["red", "green", "blue"]:
        enc = proc(images=[solid(c)], text=[text], return_tensors="pt")
        with torch.no_grad():
            g = model.generate(**enc, max_new_tokens=8, do_sample=False)
        answers[c] = proc.tokenizer.decode(g[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answers == {"red": "red", "green": "green", "blue": "blue"}


def test_sft_on_vlm_with_text_only_and_mixed_rows(parts, tmp_path):
    """Safety SFT of a VLM on text-only rows (tokenised up front) and on mixed text / image rows."""
    from safeadapt.train.sft import sft

    base = build_llava(parts["llm"], build_tower(tmp_path / "t", "clip"), tmp_path / "llava")
    text_rows = [{"messages": [{"role": "user", "content": f"How do I make a bomb {i}?"},
                               {"role": "assistant", "content": "I cannot help with that."}]} for i in range(8)]
    o = SFTOptions(lr=1e-2, max_steps=2, batch_size=4, freeze_modules=["vision_tower"])
    for name, rows in (("text", text_rows), ("mixed", text_rows[:4] + _instruct(4))):
        out = sft(base, rows, tmp_path / name, o)
        diff = changed(state(base), state(out))
        assert any("language_model" in k for k in diff) and not any("vision_tower" in k for k in diff)
        assert json.loads((out / "safeadapt_train.json").read_text())["train"]["vision_rows"] == (
            4 if name == "mixed" else 0
        )


def test_cli_vl_adapt_resolves_image_paths(parts, tmp_path):
    from typer.testing import CliRunner

    from safeadapt.cli import app

    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    for c in ("red", "green", "blue"):
        solid(c).save(data / "img" / f"{c}.png")
    caps = [{"images": [f"img/{c}.png"], "caption": f"a {c} square"} for c in ("red", "green", "blue") * 2]
    ins = [{"messages": [{"role": "user", "content": "<image>\nWhat colour?"}, {"role": "assistant", "content": c}],
            "images": [f"img/{c}.png"]} for c in ("red", "green", "blue") * 2]
    (data / "caps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in caps))
    (data / "ins.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ins))
    tower = build_tower(tmp_path / "tower", "siglip")
    out = tmp_path / "vl"
    args = ["train", "vl-adapt", "--llm", str(parts["llm"]), "--vision-tower", str(tower), "--captions",
            str(data / "caps.jsonl"), "--instruct", str(data / "ins.jsonl"), "--out", str(out),
            "--stage1-max-steps", "1", "--stage2-max-steps", "1", "--batch-size", "3"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output[-2000:]
    assert (out / "model.safetensors").is_file() and (tmp_path / "vl-stage1" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "vl-base" / "safeadapt_build.json").read_text())["config"]["family"] == "siglip"
    (data / "ins.jsonl").write_text(json.dumps(dict(ins[0], images=["img/missing.png"])) + "\n")
    r = CliRunner().invoke(app, args[:-6] + ["--out", str(tmp_path / "vl2")])
    assert r.exit_code != 0 and "image file not found" in r.stderr and "missing.png" in r.stderr
    assert f"{data / 'ins.jsonl'}:1" in r.stderr and not (tmp_path / "vl2-stage1").exists()  # failed before training
