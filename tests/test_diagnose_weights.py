"""Weight diagnosis on planted structure: a delta put in one known layer and module is found there
(also through the VLM<->LLM name map and a GGUF), opposite task vectors give cosine -1, spectra see
a planted rank-1 delta, recommend.yaml is a recipe `safeadapt merge` runs with the intended
per-layer weights, and bad input fails with one line, a non-zero exit and no output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from safeadapt.cli import app
from safeadapt.diagnose.recommend import best_range
from safeadapt.diagnose.weights import diagnose_weights
from safeadapt.io.tiny import build_tiny_llava, build_tiny_llm


def variant(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    f = dst / "model.safetensors"
    sd = load_file(f)
    edit(sd)
    save_file(sd, f, metadata={"format": "pt"})
    return dst


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return build_tiny_llm(tmp_path_factory.mktemp("dw") / "a", seed=0, layers=3)


def run(*args: str):
    res = CliRunner().invoke(app, ["diagnose", *map(str, args)])
    err = (res.stderr or "") if hasattr(res, "stderr") else res.output
    return res.exit_code, err.strip(), res.output


def test_planted_delta_found_in_its_layer_and_module(base, tmp_path):
    def plant(sd):
        sd["model.layers.1.mlp.down_proj.weight"] += 0.3
    b = variant(base, tmp_path / "b", plant)
    res = diagnose_weights([base, b])
    moved = [r for r in res["per_layer"] if r["rel_change"] > 0]
    assert [(r["pair"], r["layer"], r["module"]) for r in moved] == [("A->B", 1, "down")]
    n = moved[0]["n_params"]
    assert moved[0]["delta_norm"] == pytest.approx(0.3 * n ** 0.5, rel=1e-5)
    shares = {r["layer"]: r["energy_share"] for r in res["layers"]}
    assert shares == {0: 0.0, 1: pytest.approx(1.0), 2: 0.0}
    assert all(r["sign_agree"] == 1.0 for r in res["per_layer"] if r["rel_change"] == 0)


def test_opposite_task_vectors_cosine_minus_one(base, tmp_path):
    g = torch.Generator().manual_seed(1)
    deltas = {}

    def add(sd):
        for k, v in sd.items():
            deltas[k] = torch.randn(v.shape, generator=g) * 0.01
            sd[k] = v + deltas[k]

    b = variant(base, tmp_path / "b", add)

    def back(sd):
        for k in sd:
            sd[k] = sd[k] - deltas[k]
    c = variant(b, tmp_path / "c", back)
    res = diagnose_weights([base, b, c], ["al", "vl", "sft"])
    assert res["pairs"] == ["al->vl", "vl->sft", "al->sft"]
    cross = [r for r in res["per_layer"] if "cos_tv" in r]
    assert cross and all(r["pair"] == "al->sft" for r in cross)
    assert all(r["cos_tv"] == pytest.approx(-1.0, abs=1e-4) for r in cross)
    assert all(r["sign_agree_tv"] < 0.01 for r in cross)
    # row-block streaming (blocks of 7 elements' worth of rows) gives the same numbers
    small = diagnose_weights([base, b, c], ["al", "vl", "sft"], block_elems=7)
    for r, q in zip(res["per_layer"], small["per_layer"]):
        assert (r["pair"], r["layer"], r["module"]) == (q["pair"], q["layer"], q["module"])
        assert q["rel_change"] == pytest.approx(r["rel_change"], rel=1e-6) and q["sign_agree"] == r["sign_agree"]
    # the same task vector again: +1
    c2 = variant(b, tmp_path / "c2", lambda sd: [sd.__setitem__(k, sd[k] + deltas[k]) for k in list(sd)])
    res2 = diagnose_weights([base, b, c2])
    assert all(r["cos_tv"] == pytest.approx(1.0, abs=1e-4) for r in res2["per_layer"] if "cos_tv" in r)


def test_vlm_language_tower_compares_with_its_llm(tmp_path):
    """A LLaVA's language tower against the same weights saved as a text LLM, with a delta planted
    in layer 2's q projection of the LLM: only that is found; vision and projector are not compared."""
    vlm = build_tiny_llava(tmp_path / "vlm", seed=3, layers=3)
    sd = load_file(vlm / "model.safetensors")
    from safeadapt.io.names import canonical_part, detect_layout, to_canonical

    layout = detect_layout(sd)
    assert layout != "llm"
    canon = {to_canonical(k, layout): v for k, v in sd.items()}
    llm_sd = {k: v.clone() for k, v in canon.items() if canonical_part(k) == "language"}
    llm_sd["model.layers.2.self_attn.q_proj.weight"] += 0.05
    (tmp_path / "llm").mkdir()
    save_file(llm_sd, tmp_path / "llm" / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((vlm / "config.json").read_text())["text_config"]
    cfg["architectures"] = ["LlamaForCausalLM"]
    (tmp_path / "llm" / "config.json").write_text(json.dumps(cfg))
    res = diagnose_weights([tmp_path / "llm", vlm])
    assert res["parts"] == ["language"]
    moved = [(r["layer"], r["module"]) for r in res["per_layer"] if r["rel_change"] > 0]
    assert moved == [(2, "q")]
    assert not any(r["module"] in ("vision", "projector") for r in res["per_layer"])
    # VLM x VLM: the vision tower and projector are reported apart
    v2 = variant(vlm, tmp_path / "vlm2", lambda s: s.update({k: s[k] + 0.1 for k in s if "multi_modal_projector" in k}))
    res = diagnose_weights([vlm, v2])
    moved = {(r["layer"], r["module"]) for r in res["per_layer"] if r["rel_change"] > 0}
    assert moved == {(None, "projector")}


def test_gguf_input(tmp_path):
    from safeadapt.io.tiny import build_tiny_gguf

    build_tiny_gguf(tmp_path / "a.gguf", seed=0)
    build_tiny_gguf(tmp_path / "b.gguf", seed=0)
    res = diagnose_weights([tmp_path / "a.gguf", tmp_path / "b.gguf"])
    assert res["per_layer"] and all(r["rel_change"] == 0 for r in res["per_layer"])
    assert {r["layer"] for r in res["per_layer"]} == {0, 1, None}


def test_spectra_see_a_rank_one_delta(base, tmp_path):
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(32, 1, generator=g), torch.randn(1, 16, generator=g)
    b = variant(base, tmp_path / "b", lambda sd: sd.__setitem__("model.layers.0.mlp.up_proj.weight",
                                                                 sd["model.layers.0.mlp.up_proj.weight"] + u @ v))
    res = diagnose_weights([base, b], spectra=True, spectra_k=4)
    rec = next(r for r in res["spectra"]["records"] if r["tensor"] == "model.layers.0.mlp.up_proj.weight")
    assert rec["energy_topk"] == pytest.approx(1.0, abs=1e-4)
    assert rec["stable_rank"] == pytest.approx(1.0, abs=1e-3)
    assert rec["top_singular_values"][0] == pytest.approx(float(torch.linalg.norm(u) * torch.linalg.norm(v)), rel=1e-4)
    res0 = diagnose_weights([base, b], spectra=True, spectra_budget_s=0.0)
    assert res0["spectra"]["skipped_over_budget"] > 0


def test_best_range():
    assert best_range([0.0, 0.1, 0.8, 0.9, 0.0]) == (2, 3)
    assert best_range([0.2, 0.2, 0.2]) in {(0, 0), (0, 2)}


def test_cli_weights_then_recommend_then_merge(base, tmp_path):
    def plant(sd):
        sd["model.layers.2.self_attn.o_proj.weight"] = sd["model.layers.2.self_attn.o_proj.weight"] + 0.2

    b = variant(base, tmp_path / "b", plant)
    c = variant(
        b,
        tmp_path / "c",
        lambda sd: sd.update(
            {
                "model.norm.weight": sd["model.norm.weight"] * 0.5,
                "model.layers.2.self_attn.o_proj.weight": sd["model.layers.2.self_attn.o_proj.weight"] - 0.1,
            }
        ),
    )
    code, err, _ = run("weights", base, b, c, "--out", tmp_path / "w", "--labels", "al,vl,sft")
    assert code == 0, err
    w = json.loads((tmp_path / "w" / "weights.json").read_text())
    for r in w["per_layer"]:
        assert isinstance(r["pair"], str) and isinstance(r["module"], str) and isinstance(r["rel_change"], float)
        assert r["layer"] is None or isinstance(r["layer"], int)
    tv = {(r["layer"], r["module"]): r["cos_tv"] for r in w["per_layer"] if r.get("cos_tv") is not None}
    assert tv == {(2, "o"): pytest.approx(-1.0)}
    assert {"heatmap_rel_change_al_to_vl.png", "heatmap_cos_tv.png"} <= set(p.name for p in (tmp_path / "w").iterdir())
    code, err, _ = run("recommend", tmp_path / "w", "--out", tmp_path / "r")
    assert code == 0, err
    rec = json.loads((tmp_path / "r" / "recommend.json").read_text())
    assert rec["layers"] == [2, 2]
    code = (
        CliRunner()
        .invoke(app, ["merge", str(tmp_path / "r" / "recommend.yaml"), "--out", str(tmp_path / "m")])
        .exit_code
    )
    assert code == 0
    m, sb, sc = (load_file(p / "model.safetensors") for p in (tmp_path / "m", b, c))
    k2, k0 = "model.layers.2.self_attn.o_proj.weight", "model.layers.0.self_attn.o_proj.weight"
    torch.testing.assert_close(m[k2], 0.1 * sb[k2] + 0.9 * sc[k2])
    torch.testing.assert_close(m["model.norm.weight"], 0.75 * sb["model.norm.weight"] + 0.25 * sc["model.norm.weight"])
    torch.testing.assert_close(m[k0], sb[k0])


def _clean_fail(code: int, err: str, out: Path, needle: str) -> None:
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))


def test_bad_inputs(base, tmp_path):
    out = tmp_path / "out"
    other = build_tiny_llm(tmp_path / "deep", seed=0, layers=4)
    _clean_fail(*run("weights", base, other, "--out", out)[:2], out, "architecture mismatch: num_hidden_layers")
    miss = variant(base, tmp_path / "miss", lambda sd: sd.pop("model.layers.1.mlp.up_proj.weight"))
    _clean_fail(*run("weights", base, miss, "--out", out)[:2], out, "model.layers.1.mlp.up_proj.weight is missing")
    # shapes differ but no config to tell: bare safetensors files
    (tmp_path / "bare").mkdir()
    sd = load_file(base / "model.safetensors")
    save_file(sd, tmp_path / "bare" / "a.safetensors")
    sd["model.layers.0.mlp.up_proj.weight"] = torch.zeros(3, 3)
    save_file(sd, tmp_path / "bare" / "b.safetensors")
    _clean_fail(
        *run("weights", tmp_path / "bare" / "a.safetensors", tmp_path / "bare" / "b.safetensors", "--out", out)[:2],
        out,
        "shape mismatch for tensor model.layers.0.mlp.up_proj.weight",
    )
    _clean_fail(*run("weights", base, "--out", out)[:2], out, "2 or 3 models")
    _clean_fail(*run("weights", base, tmp_path / "nope", "--out", out)[:2], out, "does not exist")
    _clean_fail(*run("recommend", tmp_path / "nope", "--out", out)[:2], out, "weights.json")


def test_bf16_streamed_without_torch(tmp_path):
    """bf16 checkpoints are read as raw bits and widened exactly; the pass never imports torch."""
    import subprocess
    import sys

    a = build_tiny_llm(tmp_path / "a", seed=0, layers=2, dtype="bfloat16")
    k = "model.layers.0.self_attn.v_proj.weight"
    b = variant(a, tmp_path / "b", lambda sd: sd.__setitem__(k, (sd[k].float() * 1.5).to(torch.bfloat16)))
    ta, tb = load_file(a / "model.safetensors")[k].float(), load_file(b / "model.safetensors")[k].float()
    code = ("import sys, json; from safeadapt.diagnose.weights import diagnose_weights; "
            f"r = diagnose_weights([{str(a)!r}, {str(b)!r}]); "
            "print(json.dumps([r['per_tensor'], 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "SAFEADAPT_NO_PROGRESS": "1"})
    per_tensor, torch_loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert torch_loaded is False
    rec = next(t for t in per_tensor if t["tensor"] == k)["A->B"]
    assert rec["delta_norm"] == pytest.approx(float((tb - ta).norm()), rel=1e-6)
    assert rec["rel_change"] == pytest.approx(float((tb - ta).norm() / ta.norm()), rel=1e-6)


def test_per_layer_guided_merge_follows_the_scores(base, tmp_path):
    """The guided merge's per-layer weighting: the most-blamed layer gets `hi`, a zero-score one `lo`,
    the rest in proportion; the recipe merges exactly those weights (and `outside` off the layers)."""
    from safeadapt.diagnose.recommend import per_layer_recipe, per_layer_weights
    from safeadapt.repair.merge.api import merge

    w = per_layer_weights({0: 0.0, 1: 0.25, 2: 0.5}, lo=0.6, hi=0.9)
    assert w == {0: 0.6, 1: 0.75, 2: 0.9}
    b = variant(base, tmp_path / "b", lambda sd: None)
    c = variant(base, tmp_path / "c", lambda sd: sd.update({k: v + 1.0 for k, v in sd.items()}))
    merge(per_layer_recipe(str(b), str(c), w, outside=0.25), tmp_path / "m")
    m, sb = load_file(tmp_path / "m" / "model.safetensors"), load_file(b / "model.safetensors")
    for i, x in w.items():
        k = f"model.layers.{i}.self_attn.o_proj.weight"
        torch.testing.assert_close(m[k], sb[k] + x)  # (1 - x) W + x (W + 1)
    torch.testing.assert_close(m["model.norm.weight"], sb["model.norm.weight"] + 0.25)
