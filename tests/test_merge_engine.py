"""End-to-end merges of tiny local checkpoints: numerics against direct computation, per-layer
gradients, filters, sharded output that transformers loads and generates from, LLaVA x LLaVA and
LLaVA x LLM merges, vocabulary mismatch rules, and the model card."""

from __future__ import annotations

import json

import pytest
import torch

from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.tensors import open_tensors
from safeadapt.io.tiny import build_tiny_llava, build_tiny_llm
from safeadapt.repair.merge.api import merge


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo")
    return {
        "base": build_tiny_llm(d / "base", seed=0),
        "a": build_tiny_llm(d / "a", seed=1),
        "b": build_tiny_llm(d / "b", seed=2),
        "big": build_tiny_llm(d / "big", seed=3, vocab_size=70),
        "qwen": build_tiny_llm(d / "qwen", seed=4, arch="qwen2"),
        "v0": build_tiny_llava(d / "v0", seed=5),
        "v1": build_tiny_llava(d / "v1", seed=6),
    }


def sd(path):
    with open_tensors(path) as src:
        return {k: src.get(k) for k in src.keys()}


def test_linear_and_task_arithmetic_match_direct_computation(zoo, tmp_path):
    A, B, base = sd(zoo["a"]), sd(zoo["b"]), sd(zoo["base"])
    out = merge({"merge_method": "linear", "models": [{"model": str(zoo["a"]), "parameters": {"weight": 0.3}},
                                                      {"model": str(zoo["b"]), "parameters": {"weight": 0.9}}],
                 "dtype": "float32"}, tmp_path / "lin")
    M = sd(out)
    assert set(M) == set(A)
    for k in A:
        # mergekit 0.1.5 order of operations: fp32 accumulate with fused multiply-adds, then divide
        w = torch.tensor([0.3, 0.9])
        one = (1,) * A[k].dim()
        expect = torch.zeros_like(A[k]).addcmul_(A[k], w[0].reshape(one)).addcmul_(B[k], w[1].reshape(one)) / w.sum()
        assert torch.equal(M[k], expect), k
        assert torch.allclose(M[k], (0.3 * A[k] + 0.9 * B[k]) / 1.2, atol=1e-6)
    out = merge({"merge_method": "task_arithmetic", "base_model": str(zoo["base"]),
                 "models": [{"model": str(zoo["a"]), "parameters": {"weight": 0.5}},
                            {"model": str(zoo["b"]), "parameters": {"weight": -0.25}}]}, tmp_path / "ta")
    M = sd(out)
    k = "model.layers.1.mlp.down_proj.weight"
    expect = base[k] + (torch.stack([A[k] - base[k], B[k] - base[k]]) * torch.tensor([0.5, -0.25]).view(2, 1, 1)).sum(0)
    assert torch.equal(M[k], expect)


def test_per_layer_gradient_and_filter_touch_only_chosen_layers(zoo, tmp_path):
    A, base = sd(zoo["a"]), sd(zoo["base"])
    # weight 0 -> 1 over 3 layers: layer 0 untouched, layer 1 half way, layer 2 fully model a
    out = merge({"merge_method": "task_arithmetic", "base_model": str(zoo["base"]),
                 "models": [{"model": str(zoo["a"]), "parameters": {"weight": [0.0, 1.0]}}]}, tmp_path / "grad")
    M = sd(out)
    q = "model.layers.{}.self_attn.q_proj.weight"
    assert torch.equal(M[q.format(0)], base[q.format(0)])
    assert torch.allclose(M[q.format(1)], (base[q.format(1)] + A[q.format(1)]) / 2, atol=1e-6)
    assert torch.allclose(M[q.format(2)], A[q.format(2)], atol=1e-6)
    # tensors outside the decoder layers sit at t=0, as in mergekit 0.1.5 (embeddings, norm, lm_head)
    assert torch.equal(M["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert torch.equal(M["lm_head.weight"], base["lm_head.weight"])
    # filter: only self-attention takes model a
    out = merge(
        {
            "merge_method": "task_arithmetic",
            "base_model": str(zoo["base"]),
            "models": [
                {
                    "model": str(zoo["a"]),
                    "parameters": {"weight": [{"filter": "self_attn", "value": 1.0}, {"value": 0.0}]},
                }
            ],
        },
        tmp_path / "filt",
    )
    M = sd(out)
    for k in M:
        want = A[k] if "self_attn" in k else base[k]
        assert torch.allclose(M[k], want, atol=1e-6), k


def test_sharded_output_loads_and_generates(zoo, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merge({"merge_method": "ties", "base_model": str(zoo["base"]),
                 "models": [{"model": str(zoo["a"]), "parameters": {"weight": 0.5, "density": 0.5}},
                            {"model": str(zoo["b"]), "parameters": {"weight": 0.5, "density": 0.5}}],
                 "out_dtype": "bfloat16"}, tmp_path / "ties", max_shard_size="4KB")
    idx = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(idx["weight_map"].values()))
    assert len(shards) > 3 and all((out / s).is_file() for s in shards)
    from safeadapt.io.tensors import read_safetensors_header

    for s in shards:  # a shard exceeds the limit only when it holds one oversized tensor
        infos, meta = read_safetensors_header(out / s)
        assert sum(i.nbytes for i in infos.values()) <= 4000 or len(infos) == 1
        assert meta["merge_method"] == "ties"
    assert set(idx["weight_map"]) == set(sd(zoo["base"]))
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "w1 w2"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    gen = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] == ids["input_ids"].shape[1] + 4
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and "merge" in card.data.tags
    assert card.data.base_model == [str(zoo["base"])]
    assert set(card.data.to_dict()["safeadapt"]["inputs_sha256_fast"]) == {
        str(zoo["a"]),
        str(zoo["b"]),
        str(zoo["base"]),
    }
    assert "merge_method: ties" in card.text


def test_dare_is_reproducible_with_seed(zoo, tmp_path):
    cfg = {"merge_method": "dare_ties", "base_model": str(zoo["base"]),
           "models": [{"model": str(zoo["a"]), "parameters": {"weight": 1.0, "density": 0.5}},
                      {"model": str(zoo["b"]), "parameters": {"weight": 1.0, "density": 0.5}}]}
    x, y, z = (sd(merge(cfg, tmp_path / n, seed=s)) for n, s in (("x", 3), ("y", 3), ("z", 4)))
    k = "model.layers.0.mlp.up_proj.weight"
    assert all(torch.equal(x[n], y[n]) for n in x)
    assert not torch.equal(x[k], z[k])


def test_vlm_x_vlm_merges_every_tensor(zoo, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    V0, V1 = sd(zoo["v0"]), sd(zoo["v1"])
    out = merge(
        {
            "merge_method": "linear",
            "models": [
                {"model": str(zoo["v0"]), "parameters": {"weight": 1.0}},
                {"model": str(zoo["v1"]), "parameters": {"weight": 1.0}},
            ],
        },
        tmp_path / "vv",
    )
    M = sd(out)
    assert set(M) == set(V0)
    for k in ("vision_tower.encoder.layers.0.mlp.fc1.weight", "multi_modal_projector.linear_1.weight",
              "language_model.model.layers.2.self_attn.o_proj.weight"):
        assert torch.allclose(M[k], (V0[k] + V1[k]) / 2, atol=1e-6), k
    model = AutoModelForImageTextToText.from_pretrained(out)
    proc = AutoProcessor.from_pretrained(out)
    from PIL import Image

    inputs = proc(images=[Image.new("RGB", (32, 32), "red")], text=["<image> w1 w2"], return_tensors="pt")
    assert model.generate(**inputs, max_new_tokens=2, do_sample=False).shape[1] == inputs["input_ids"].shape[1] + 2


def test_vlm_x_llm_merges_language_tower_and_passes_vision_through(zoo, tmp_path):
    from transformers import AutoModelForImageTextToText

    V0, A = sd(zoo["v0"]), sd(zoo["a"])
    out = merge({"merge_method": "task_arithmetic", "base_model": str(zoo["v0"]),
                 "models": [{"model": str(zoo["a"]), "parameters": {"weight": 1.0}}]}, tmp_path / "vl")
    M = sd(out)
    assert set(M) == set(V0)
    # language tower equals the LLM's (base + 1.0 * (llm - base)); vision + projector are v0's
    for llm_k, vlm_k in (("model.layers.1.mlp.gate_proj.weight", "language_model.model.layers.1.mlp.gate_proj.weight"),
                         ("lm_head.weight", "language_model.lm_head.weight")):
        assert torch.allclose(M[vlm_k], A[llm_k], atol=1e-6)
    for k in V0:
        if k.startswith(("vision_tower.", "multi_modal_projector.")):
            assert torch.equal(M[k], V0[k]), k
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava"
    assert (out / "processor_config.json").is_file()
    AutoModelForImageTextToText.from_pretrained(out)
    # the usual real case: the VLM's vocabulary = the LLM's + <image>. Shared rows are merged and the
    # VLM's extra row is kept, without a tokenizer_source (the output is the VLM)
    small = build_tiny_llm(tmp_path / "llm63", seed=7, vocab_size=63)
    S = sd(small)
    out = merge(
        {
            "merge_method": "linear",
            "models": [
                {"model": str(zoo["v0"]), "parameters": {"weight": 1.0}},
                {"model": str(small), "parameters": {"weight": 1.0}},
            ],
        },
        tmp_path / "vl63",
    )
    M = sd(out)
    e = "language_model.model.embed_tokens.weight"
    assert M[e].shape == (64, 16)
    assert torch.allclose(M[e][:63], (V0[e][:63] + S["model.embed_tokens.weight"]) / 2, atol=1e-6)
    assert torch.equal(M[e][63], V0[e][63])
    assert "extra rows copied unchanged from " + str(zoo["v0"]) in (out / "README.md").read_text()


def test_vocabulary_mismatch_errors_or_copies_extra_rows(zoo, tmp_path):
    import shutil

    cfg = {"merge_method": "linear", "models": [{"model": str(zoo["a"]), "parameters": {"weight": 1.0}},
                                                {"model": str(zoo["big"]), "parameters": {"weight": 1.0}}]}
    with pytest.raises(
        SafeAdaptError, match=r"(lm_head|model.embed_tokens).weight has different vocabulary sizes \(64 in .* vs 70 in"
    ):
        merge(cfg, tmp_path / "v")
    assert not (tmp_path / "v").exists()
    out = merge({**cfg, "tokenizer_source": str(zoo["big"])}, tmp_path / "v")
    M, A, Bg = sd(out), sd(zoo["a"]), sd(zoo["big"])
    for e in ("model.embed_tokens.weight", "lm_head.weight"):
        assert M[e].shape == (70, 16)
        assert torch.allclose(M[e][:64], (A[e] + Bg[e][:64]) / 2)
        assert torch.equal(M[e][64:], Bg[e][64:])
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 70
    assert (out / "tokenizer.json").read_text() == (zoo["big"] / "tokenizer.json").read_text()
    # "union" takes the larger vocabulary (and its tokenizer) too
    u = merge({**cfg, "tokenizer_source": "union"}, tmp_path / "u")
    assert sd(u)["lm_head.weight"].shape == (70, 16)
    assert (u / "tokenizer.json").read_text() == (zoo["big"] / "tokenizer.json").read_text()
    # tokenizers that disagree on a shared id are refused, naming the id
    bad = tmp_path / "bad"
    shutil.copytree(zoo["big"], bad)
    tj = json.loads((bad / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    vocab["w0"], vocab["w1"] = vocab["w1"], vocab["w0"]
    (bad / "tokenizer.json").write_text(json.dumps(tj))
    cfg["models"][1]["model"] = str(bad)
    with pytest.raises(SafeAdaptError, match="tokenizers disagree on token id 7"):
        merge({**cfg, "tokenizer_source": str(bad)}, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_gguf_input_and_relative_paths_and_explicit_vision_source(zoo, tmp_path):
    from transformers import AutoModelForCausalLM

    from safeadapt.io.tiny import build_tiny_gguf

    build_tiny_gguf(tmp_path / "g.gguf", seed=9, layers=2)
    build_tiny_llm(tmp_path / "l2", seed=8, layers=2)
    G, L = sd(tmp_path / "g.gguf"), sd(tmp_path / "l2")
    (tmp_path / "r.yaml").write_text(
        "merge_method: linear\nmodels:\n  - model: g.gguf\n    parameters: {weight: 1.0}\n"
        "  - model: l2\n    parameters: {weight: 3.0}\n")  # paths relative to the recipe's folder
    out = merge(tmp_path / "r.yaml", tmp_path / "out")
    M = sd(out)
    k = "model.layers.1.self_attn.q_proj.weight"
    assert torch.allclose(M[k], (G[k] + 3 * L[k]) / 4, atol=1e-6)
    m = AutoModelForCausalLM.from_pretrained(out)  # config.json rebuilt from the GGUF metadata
    assert m.config.num_hidden_layers == 2 and (out / "tokenizer_config.json").is_file()
    # VLM x VLM with an explicit vision_source: vision tower + projector copied, language merged
    V0, V1 = sd(zoo["v0"]), sd(zoo["v1"])
    out = merge({"merge_method": "linear", "vision_source": str(zoo["v1"]),
                 "models": [{"model": str(zoo["v0"]), "parameters": {"weight": 1.0}},
                            {"model": str(zoo["v1"]), "parameters": {"weight": 1.0}}]}, tmp_path / "vs")
    M = sd(out)
    assert torch.equal(M["multi_modal_projector.linear_1.weight"], V1["multi_modal_projector.linear_1.weight"])
    k = "language_model.model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(M[k], (V0[k] + V1[k]) / 2, atol=1e-6)


def test_tokenizer_block_and_chat_template_override(zoo, tmp_path):
    from transformers import AutoTokenizer

    tpl = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}"
    out = merge({"merge_method": "linear", "tokenizer": {"source": str(zoo["b"])}, "chat_template": tpl,
                 "models": [{"model": str(zoo["a"]), "parameters": {"weight": 1.0}},
                            {"model": str(zoo["b"]), "parameters": {"weight": 1.0}}]}, tmp_path / "t")
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.apply_chat_template([{"role": "user", "content": "w1"}], tokenize=False) == "[user] w1 "
    # tokenizer files from a model outside the merge (path written with a trailing slash)
    out = merge({"merge_method": "linear", "models": [{"model": str(zoo["a"]), "parameters": {"weight": 1.0}}]},
                tmp_path / "ext", copy_tokenizer_from=str(zoo["big"]) + "/")
    assert (out / "tokenizer.json").read_text() == (zoo["big"] / "tokenizer.json").read_text()
    with pytest.raises(SafeAdaptError, match="chat_template must be a Jinja template"):
        merge(
            {
                "merge_method": "linear",
                "chat_template": "chatml",
                "models": [{"model": str(zoo["a"]), "parameters": {"weight": 1.0}}],
            },
            tmp_path / "u",
        )


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_row_chunked_streaming_is_bit_identical_to_whole_tensors(zoo, tmp_path, monkeypatch, dtype):
    from safeadapt.repair.merge import engine

    models = [{"model": str(zoo["a"]), "parameters": {"weight": 0.7, "density": 0.5}},
              {"model": str(zoo["b"]), "parameters": {"weight": 0.4, "density": 0.3}}]
    plain = [{"model": m["model"], "parameters": {"weight": m["parameters"]["weight"]}} for m in models]
    cfgs = {
        "linear": {
            "merge_method": "linear",
            "models": plain + [{"model": str(zoo["base"]), "parameters": {"weight": 0.2}}],
        },
        "task_arithmetic": {"merge_method": "task_arithmetic", "base_model": str(zoo["base"]), "models": plain},
        "ties": {"merge_method": "ties", "base_model": str(zoo["base"]), "models": models},
    }
    seen = []
    real = engine.PrepareJob

    def spy(*a, **k):
        seen.append(a[0])
        return real(*a, **k)

    for name, cfg in cfgs.items():
        cfg = {**cfg, "dtype": dtype}
        whole = merge(cfg, tmp_path / f"{name}_whole")
        monkeypatch.setattr(engine, "MIN_CHUNKED_ELEMS", 64)
        monkeypatch.setattr(engine, "CHUNK_ELEMS", 40)  # uneven blocks of a few rows
        monkeypatch.setattr(engine, "PrepareJob", spy)
        chunked = merge(cfg, tmp_path / f"{name}_chunked")
        monkeypatch.undo()
        a, b = sd(whole), sd(chunked)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), (name, k)
    assert "model.embed_tokens.weight" in seen  # TIES masks were prepared for the streamed tensors


def test_row_chunked_dare_is_seeded_and_keeps_density(zoo, tmp_path, monkeypatch):
    from safeadapt.repair.merge import engine

    monkeypatch.setattr(engine, "MIN_CHUNKED_ELEMS", 64)
    monkeypatch.setattr(engine, "CHUNK_ELEMS", 40)
    cfg = {"merge_method": "dare_linear", "base_model": str(zoo["base"]), "dtype": "float32",
           "models": [{"model": str(zoo["a"]), "parameters": {"weight": 1.0, "density": 0.3}}]}
    a = sd(merge(cfg, tmp_path / "s0", seed=0))
    b = sd(merge(cfg, tmp_path / "s0b", seed=0))
    c = sd(merge(cfg, tmp_path / "s1", seed=1))
    base, ft = sd(zoo["base"]), sd(zoo["a"])
    k = "model.embed_tokens.weight"
    assert all(torch.equal(a[n], b[n]) for n in a) and not torch.equal(a[k], c[k])
    changed = (a[k] != base[k]).float().mean().item()
    assert abs(changed - 0.3) < 0.05, changed
    # rescale (on for DARE): the kept task vector's L1 norm equals the whole task vector's
    d, full = a[k] - base[k], ft[k] - base[k]
    assert abs(d.abs().sum().item() / full.abs().sum().item() - 1) < 1e-3
