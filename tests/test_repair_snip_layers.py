"""Layer-by-layer SNIP (safeadapt.repair.calibrate.snip): the same scores as the whole-model pass on a
tiny Llama and a tiny LLaVA's language model, one file per layer read back tensor by tensor, also
when the rows are split into chunks; and a planted SNIP graft through `safeadapt repair`."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_repair_methods import calib, edit, open_model, sd

from safeadapt.io.tiny import build_tiny_llava, build_tiny_llm


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("snip") / "m", seed=3)


def _custom_llm(out, arch, seed=7, **cfg_kw):
    """A tiny causal LM of `arch` (qwen2: q/k/v biases; gemma2: soft-capped logits) with its config changed."""
    from transformers import AutoModelForCausalLM, Gemma2Config

    from safeadapt.io.tiny import _text_config, tiny_tokenizer

    if arch == "gemma2":
        cfg = Gemma2Config(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=64,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=3,
        )
    else:
        cfg = _text_config(arch, 64, 16, 3)
    for k, v in cfg_kw.items():
        setattr(cfg, k, v)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    tiny_tokenizer(64).save_pretrained(out)
    return out


@pytest.mark.parametrize("kind", ["llm", "llava", "qwen2-tied"])
def test_snip_by_layer_equals_whole_model(llm, tmp_path, kind):
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.calibrate import LazyScores, calibration_rows, snip_scores, snip_scores_by_layer, tokenize
    from safeadapt.train.common import tokenizer_of

    path = {
        "llm": lambda: llm,
        "llava": lambda: build_tiny_llava(tmp_path / "v", seed=4),
        "qwen2-tied": lambda: _custom_llm(tmp_path / "q", "qwen2", tie_word_embeddings=True, initializer_range=0.3),
    }[kind]()
    model, proc = load_pretrained(str(path))
    rows = tokenize(tokenizer_of(proc), calibration_rows(calib(tmp_path / "c.jsonl", n=5), 128, 0, "c"), 256, "c")
    rows.insert(2, (rows[0][0], [-100] * (len(rows[0][0]) - 1) + [rows[0][0][-1]]))  # no next-token target: skipped
    whole = snip_scores(model, rows)
    assert all(torch.isfinite(v).all() for v in whole.values())
    layer_keys = {k for k in whole if ".layers." in k}
    assert len(layer_keys) == 7 * 3
    # absolute tolerance on the model's score scale: q/k gradients of a near-uniform attention can sit
    # at rounding-noise level (~1e-7 of the largest score), where no two summation orders agree
    scale = max(float(whole[k].abs().max()) for k in layer_keys)
    inp = open_model(path)
    try:
        one = snip_scores_by_layer(inp, rows, tmp_path / "one", vocab_block=100)
        # ~2 rows per chunk: partial sums stay on disk between chunks
        per_row = 4 * model.config.get_text_config().hidden_size * (3 + 1) * max(len(r[0]) for r in rows)
        chunked = snip_scores_by_layer(inp, rows, tmp_path / "chunked", cache_bytes=2 * per_row)
    finally:
        inp.source.close()
    assert all(
        sorted(p.name for p in d.iterdir()) == ["model.safetensors"] for d in (one, chunked)
    )  # partial sums removed
    for d in (one, chunked):
        lazy = LazyScores(d)
        for k in layer_keys:
            got = lazy.get(k)
            assert got.shape == whole[k].shape, k
            assert torch.allclose(got, whole[k], rtol=1e-4, atol=1e-6 * scale), k
        assert lazy.get("lm_head.weight") is None
    assert sum(float(whole[k].abs().max()) > 1e-3 * scale for k in layer_keys) >= 15  # most matrices carry real signal


def test_soft_capped_logits_fall_back_to_the_whole_model(tmp_path):
    """Gemma 2 soft-caps its logits outside the LM head: the layer-wise pass refuses it before writing
    anything and `compute_scores` scores the model whole (the same numbers as `snip_scores`)."""
    from safeadapt.io.models import load_pretrained
    from safeadapt.io.resolve import resolve_model_ref
    from safeadapt.repair.calibrate import (
        CalibrationJob,
        NotLayerwise,
        calibration_rows,
        compute_scores,
        snip_scores,
        snip_scores_by_layer,
        tokenize,
    )
    from safeadapt.repair.methods.base import ScoreNeed
    from safeadapt.train.common import tokenizer_of

    path = _custom_llm(tmp_path / "g", "gemma2")
    texts = {"safety": calibration_rows(calib(tmp_path / "c.jsonl", n=3), 3, 0, "safety")}
    model, proc = load_pretrained(str(path))
    assert model.config.final_logit_softcapping
    rows = tokenize(tokenizer_of(proc), texts["safety"], 64, "c")
    inp = open_model(path)
    with pytest.raises(NotLayerwise, match="final_logit_softcapping"):
        snip_scores_by_layer(inp, rows, tmp_path / "refused")
    inp.source.close()
    assert not (tmp_path / "refused").exists()
    job = CalibrationJob(needs=[ScoreNeed("s", "snip", "safety", "aligned")],
                         inputs={"aligned": (str(path), resolve_model_ref(str(path)))}, texts=texts, max_length=64,
                         batch_size=2, out_dir=str(tmp_path))
    got = load_file(compute_scores(job)["s"])
    want = snip_scores(model, rows)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_row_chunks_bound_the_cache():
    from safeadapt.repair.calibrate import row_chunks

    assert row_chunks([3, 4, 2, 9, 1], 10, 70) == [[0, 1], [2], [3], [4]]
    assert row_chunks([3, 4], 10, 10**6) == [[0, 1]]


def _chat_file(path, words, n=6):
    rows = [
        {
            "messages": [
                {"role": "user", "content": " ".join(words[(i + j) % len(words)] for j in range(4))},
                {"role": "assistant", "content": " ".join(words[(i * 2 + j) % len(words)] for j in range(8))},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_snip_graft_selects_planted_safety_feature(tmp_path, monkeypatch):
    """Planted: the tokens of the safety texts (and only those) carry a huge embedding feature j in
    the aligned model, so layer 0's Linears get large |dL/dW| in input column j on safety data only:
    grafting with SNIP (scored layer by layer, through `repair`) copies exactly those columns' top
    entries from the aligned model, the same selection as the whole-model SNIP scores."""
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.api import repair
    from safeadapt.repair.calibrate import calibration_rows, snip_scores, tokenize
    from safeadapt.repair.calibrate import snip as calibrate_snip
    from safeadapt.repair.methods.set_difference import top_mask
    from safeadapt.train.common import tokenizer_of

    aligned, adapted = tmp_path / "aligned", tmp_path / "adapted"
    build_tiny_llm(aligned, seed=5)
    build_tiny_llm(adapted, seed=6)
    safety = _chat_file(tmp_path / "s.jsonl", [f"w{i}" for i in range(0, 12)])  # word-level tokens w0..wN
    utility = _chat_file(tmp_path / "u.jsonl", [f"w{i}" for i in range(20, 40)])
    model, proc = load_pretrained(str(aligned))
    tok = tokenizer_of(proc)
    rows = {n: tokenize(tok, calibration_rows(f, 128, 0, n), 256, n) for n, f in (("s", safety), ("u", utility))}
    used = {n: {t for ids, _ in r for t in ids} for n, r in rows.items()}
    planted = sorted(used["s"] - used["u"])
    assert len(planted) >= 3
    j = 7

    def plant(s):
        s["model.embed_tokens.weight"][planted, j] += 30.0
    edit(aligned, plant)
    calls = []
    real = calibrate_snip.snip_scores_by_layer
    monkeypatch.setattr(calibrate_snip, "snip_scores_by_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setenv("SAFEADAPT_CALIBRATE_IN_PROCESS", "1")
    rec = {"repair_method": "set_difference", "adapted": str(adapted), "aligned": str(aligned),
           "parameters": {"score": "snip", "p": 0.1, "q": 0.1, "action": "graft"},
           "calibration": {"safety": safety, "utility": utility}}
    out = repair(rec, tmp_path / "g")
    assert len(calls) == 2  # safety and utility scored layer by layer
    o, ad, al = sd(out), sd(adapted), sd(aligned)
    model, _ = load_pretrained(str(aligned))
    whole = {n: snip_scores(model, r) for n, r in rows.items()}
    k = "model.layers.0.self_attn.v_proj.weight"  # the value path is linear in x_j: dL/dW[:, j] = sum_t dL/dv(t) x_j(t)
    changed = o[k] != ad[k]
    assert torch.equal(o[k][changed], al[k][changed])
    in_j = changed[:, j].float().mean()
    rest = torch.cat([changed[:, :j], changed[:, j + 1:]], 1).float().mean()
    assert in_j >= 0.4 and in_j >= 8 * rest  # the planted column is where the safety-critical entries are
    for k in (x for x in o if ".layers." in x and x.endswith("proj.weight")):
        expect = top_mask(whole["s"][k], 0.1) & ~top_mask(whole["u"][k], 0.1)
        assert int(((o[k] != ad[k]) != expect).sum()) <= 1, k
    untouched = [k for k in ad if ".layers." not in k]
    assert untouched and all(torch.equal(o[k], ad[k]) for k in untouched)
