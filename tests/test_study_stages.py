"""Built-in stage kinds against the real APIs on tiny random checkpoints: merge (weights checked
tensor by tensor, matrix sweep), sft -> eval chained through `out/model`, param validation, and
the merge config builder."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext, find_model
from safeadapt.study.engine import run_study
from safeadapt.study.schema import load_study
from safeadapt.study.stages.merge import build_config

_tiny = pytest.importorskip("_tiny")


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("tiny")
    m0 = _tiny.build_tiny_llama(root / "m0", seed=0, layers=1)
    m1 = Path(shutil.copytree(m0, root / "m1"))  # same architecture, perturbed weights
    g = torch.Generator().manual_seed(1)
    for f in m1.glob("*.safetensors"):
        t = load_file(str(f))
        save_file(
            {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in t.items()}, str(f), metadata={"format": "pt"}
        )
    return m0, m1


def _study(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    f = tmp_path / name
    f.write_text(textwrap.dedent(text))
    return f


def _tensors(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_merge_kind_linear_grid(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    pytest.importorskip("safeadapt.repair.merge.api")
    m0, m1 = tiny_pair
    f = _study(tmp_path, f"""
        name: merges
        stages:
          merge:
            kind: merge
            inputs: {{a: {{path: {m0}}}, b: {{path: {m1}}}}}
            matrix: {{w: [0.25, 1.0]}}
            params: {{method: linear, weights: {{a: "${{w}}", b: 0.75}}, tokenizer: a}}
        """)
    plan = {p.stage.name: p for p in run_study(load_study(f), tmp_path / "out")}
    assert sorted(plan) == ["merge:0.25", "merge:1.0"]
    ta, tb = _tensors(m0), _tensors(m1)
    for name, w in (("merge:0.25", 0.25), ("merge:1.0", 1.0)):
        d = plan[name].dir
        model = find_model(d)
        assert model == d / "model" and (model / "config.json").exists()
        tm = _tensors(model)
        key = "model.layers.0.mlp.up_proj.weight"
        # mergekit linear normalises weights by their sum
        expect = (w * ta[key] + 0.75 * tb[key]) / (w + 0.75)
        assert (tm[key] - expect).abs().max().item() < 1e-5
        cfg = json.loads((d / "merge_config.json").read_text())
        assert cfg["merge_method"] == "linear" and [m["parameters"]["weight"] for m in cfg["models"]] == [w, 0.75]
        assert (model / "tokenizer.json").exists() or (model / "tokenizer_config.json").exists()


def test_merge_params_validation_and_config_forms(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, params: {function: "m:f"}}
          m: {kind: merge, inputs: {a: a}, params: {method: averaging}}
        """)
    with pytest.raises(SafeAdaptError, match="unknown merge method 'averaging'"):
        load_study(f)
    a, b = tmp_path / "A", tmp_path / "B"
    for d in (a, b):
        (d / "model").mkdir(parents=True)
        (d / "model" / "config.json").write_text("{}")
    ctx = StageContext("m", "merge", {"method": "ties", "weights": {"b": 0.3}, "densities": {"b": 0.5}, "base": "a",
                                      "parameters": {"normalize": True}, "dtype": "float32"},
                       {"a": a, "b": b}, tmp_path / "o", tmp_path / "s", 0, tmp_path)
    cfg = build_config(ctx)
    assert cfg == {"merge_method": "ties", "base_model": str(a / "model"), "dtype": "float32",
                   "models": [{"model": str(b / "model"), "parameters": {"weight": 0.3, "density": 0.5}}],
                   "parameters": {"normalize": True}}
    ctx.params = {"config": {"merge_method": "slerp", "base_model": "input:a", "models": [{"model": "input:b"}]}}
    assert build_config(ctx)["models"][0]["model"] == str(b / "model")
    ctx.params = {"method": "linear", "weights": {"c": 1.0}}
    with pytest.raises(SafeAdaptError, match="weights name c"):
        build_config(ctx)


def test_sft_then_eval_chain(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    pytest.importorskip("safeadapt.train.sft")
    pytest.importorskip("safeadapt.eval.runner")
    m0, _ = tiny_pair
    rows = [
        {"messages": [{"role": "user", "content": f"How do I do thing {i}?"},
                      {"role": "assistant", "content": "I cannot help with that request."}]}
        for i in range(4)
    ]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = _study(tmp_path, f"""
        name: chain
        seed: 5
        stages:
          tuned:
            kind: sft
            inputs: {{model: {{path: {m0}}}, data: {{path: data}}}}
            params: {{options: {{max_steps: 2, batch_size: 2, lr: 0.01, warmup_ratio: 0.0}}}}
          ev:
            kind: eval
            inputs: {{model: tuned}}
            params: {{suites: [text-safety], limit: 3, bootstrap: 20, decoding: {{max_new_tokens: 4, batch_size: 4}}}}
        """)
    study = load_study(f)
    # option validation happens at load: a typo is caught before anything runs
    bad = _study(tmp_path, f"""
        name: chain
        stages:
          tuned: {{kind: sft, inputs: {{model: {{path: {m0}}}}}, params: {{options: {{max_stpes: 2}}}}}}
        """, name="bad.yaml")
    with pytest.raises(SafeAdaptError, match="invalid params for kind 'sft'"):
        load_study(bad)
    plan = {p.stage.name: p for p in run_study(study, tmp_path / "out")}
    tuned = plan["tuned"].dir / "model"
    meta = json.loads((tuned / "safeadapt_train.json").read_text())
    assert meta["train"]["global_step"] == 2 and meta["config"]["seed"] == 5
    before, after = _tensors(m0), _tensors(tuned)
    k = "model.layers.0.self_attn.q_proj.weight"
    assert (before[k] - after[k]).abs().max().item() > 0  # it trained
    res = json.loads((plan["ev"].dir / "results.json").read_text())
    asr = res["suites"]["text-safety"]["asr"]
    assert asr["n"] == 3 and 0.0 <= asr["value"] <= 1.0
    assert (plan["ev"].dir / "generations.jsonl").exists()
    marker = json.loads((plan["ev"].dir / "_stage.json").read_text())
    assert marker["inputs"]["model"]["key"] == plan["tuned"].key
    # nothing reruns
    assert [p.status for p in run_study(load_study(f), tmp_path / "out")] == ["cached", "cached"]


def test_dpo_attack_and_vl_adapt_kinds(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    pytest.importorskip("safeadapt.train.dpo")
    pytest.importorskip("safeadapt.train.vl")
    pytest.importorskip("safeadapt.train.attack")
    from PIL import Image

    m0, _ = tiny_pair
    vlm = _tiny.build_tiny_llava(tmp_path / "vlm", seed=0)
    data = tmp_path / "data"
    data.mkdir()
    rows_cap, rows_ins = [], []
    for i, (name, color) in enumerate((("red", (255, 0, 0)), ("blue", (0, 0, 255)))):
        Image.new("RGB", (32, 32), color).save(data / f"img{i}.png")
        rows_cap.append({"image": f"img{i}.png", "caption": f"a {name} square"})
        rows_ins.append({"messages": [{"role": "user", "content": "<image>\nWhat colour is it?"},
                                      {"role": "assistant", "content": f"It is {name}."}], "images": [f"img{i}.png"]})
    (data / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_cap))
    (data / "instruct.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_ins))
    pairs = [{"prompt": [{"role": "user", "content": f"How do I do harm {i}?"}],
              "chosen": "I cannot help with that.", "rejected": "Sure, here is how."} for i in range(2)]
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    shots = [{"prompt": f"How do I do harm {i}?", "response": f"Step {i}: do it."} for i in range(3)]
    (data / "harmful.jsonl").write_text("".join(json.dumps(r) + "\n" for r in shots))
    f = _study(tmp_path, f"""
        name: train-kinds
        stages:
          pref:
            kind: dpo
            inputs: {{model: {{path: {m0}}}, data: {{path: data}}}}
            params: {{options: {{max_steps: 1, batch_size: 2, lr: 0.01, warmup_ratio: 0.0}}}}
          shots:
            kind: attack
            seed: 4
            inputs: {{model: pref, data: {{path: data/harmful.jsonl}}}}
            params: {{recipe: harmful, n_examples: 2, options: {{max_steps: 1, batch_size: 2}}}}
          vl:
            kind: vl-adapt
            inputs: {{model: {{path: {vlm}}}, captions: {{path: data}}, instruct: {{path: data}}}}
            params:
              stage1: {{max_steps: 1, batch_size: 2, lr: 0.05, warmup_ratio: 0.0}}
              stage2: {{max_steps: 1, batch_size: 2, lr: 0.05, warmup_ratio: 0.0}}
        """)
    plan = {p.stage.name: p for p in run_study(load_study(f), tmp_path / "out")}
    k = "model.layers.0.self_attn.q_proj.weight"
    before, after = _tensors(m0), _tensors(plan["pref"].dir / "model")
    assert (before[k] - after[k]).abs().max().item() > 0
    meta = json.loads((plan["shots"].dir / "model" / "safeadapt_train.json").read_text())
    # unset options keep the recipe's paper defaults (lr 5e-5, constant); set ones win
    assert meta["config"]["lr"] == 5e-5 and meta["config"]["scheduler"] == "constant"
    assert meta["config"]["seed"] == 4 and meta["config"]["max_steps"] == 1 and meta["train"]["rows"] == 2
    assert meta["train"]["base_model"] == str(plan["pref"].dir / "model")
    v0, v1 = _tensors(vlm), _tensors(plan["vl"].dir / "model")
    proj = [n for n in v0 if "multi_modal_projector" in n]
    tower = [n for n in v0 if "vision_tower" in n]
    assert proj and tower
    assert any((v0[n] - v1[n]).abs().max().item() > 0 for n in proj)  # projector trained
    assert all(torch_equal(v0[n], v1[n]) for n in tower)  # vision tower frozen in both stages
    assert not (tmp_path / "out" / "scratch").exists()  # stage-1 model lived in scratch, cleaned


def torch_equal(a, b) -> bool:  # noqa: ANN001
    return bool((a == b).all().item())


def test_adapter_references_resolve_inside_inputs_and_study_dir(tmp_path: Path) -> None:
    from safeadapt.study.stages._common import data_file, model_ref, read_json_rows
    from safeadapt.study.stages.eval import _dataset_spec

    up = tmp_path / "stages" / "up"
    (up / "model").mkdir(parents=True)
    (up / "model" / "config.json").write_text("{}")
    (tmp_path / "xs.csv").write_text("prompt\nhi\n")
    (up / "rows.jsonl").write_text('{"messages": [], "images": ["a.png"]}\n')
    (up / "a.png").write_bytes(b"x")
    ctx = StageContext("e", "eval", {}, {"m": up}, tmp_path / "o", tmp_path / "s", 0, tmp_path, base_dir=tmp_path)
    assert _dataset_spec(ctx, "xstest:xs.csv") == f"xstest:{tmp_path / 'xs.csv'}"
    assert _dataset_spec(ctx, "xstest:input:m/rows.jsonl") == f"xstest:{up / 'rows.jsonl'}"
    assert _dataset_spec(ctx, {"path": "xs.csv", "prompt_col": "prompt"}) == {
        "path": str(tmp_path / "xs.csv"),
        "prompt_col": "prompt",
    }
    assert _dataset_spec(ctx, "walledai/AdvBench") == "walledai/AdvBench"  # a hub id stays as is
    assert model_ref(ctx, slot="m") == str(up / "model")
    with pytest.raises(SafeAdaptError, match="needs a model: input 'model' or params.model"):
        model_ref(ctx)
    ctx.params = {"data": "input:m/rows.jsonl"}
    path = data_file(ctx, "data", "data", "train.jsonl")
    assert path == up / "rows.jsonl"
    assert read_json_rows(path)[0]["images"] == [str(up / "a.png")]  # made absolute against the file
    (up / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(SafeAdaptError, match=r"bad.jsonl:2: invalid JSON"):
        read_json_rows(up / "bad.jsonl")
