"""SOMF on a tiny model: the DPO gradient reaches only the mask logits (every other parameter is frozen),
and the written model is aligned + B * tau / mean(B) with a binary mask B per matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from safeadapt.io.tiny import build_tiny_llm


@pytest.fixture(scope="module")
def llms(tmp_path_factory):
    d = tmp_path_factory.mktemp("somf")
    return {k: build_tiny_llm(d / k, seed=s, layers=2) for k, s in (("aligned", 0), ("adapted", 1), ("other", 2))}


def pairs(path: Path) -> str:
    rows = [
        {"prompt": f"w{i} w{i + 1} w{i + 2}", "chosen": "w40 w41 w42", "rejected": f"w{i + 10} w{i + 11}"}
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_gradient_reaches_only_logits(llms):
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.merge.config import MergeConfig, ModelEntry
    from safeadapt.repair.merge.inputs import open_inputs
    from safeadapt.repair.somf_train import attach_masks

    cfg = MergeConfig(
        merge_method="x", models=[ModelEntry(model=str(llms["adapted"])), ModelEntry(model=str(llms["aligned"]))]
    )
    models = open_inputs(cfg, None, False)

    class P:  # the plan fields attach_masks reads
        pass
    plan = P()
    plan.models = models
    model, _ = load_pretrained(str(llms["adapted"]), for_training=True)
    params = {"fusion": "ties", "density": 0.5, "weight": 1.0, "temperature": 0.5}
    mods = attach_masks(model, plan, {"adapted": 0, "aligned": 1, "others": []}, params, 0, ["mlp"])
    assert set(mods) == {f"model.layers.{i}.mlp.{p}_proj.weight" for i in range(2) for p in ("gate", "up", "down")}
    model.train()
    x = torch.tensor([[5, 6, 7, 8, 9, 10]])
    model(input_ids=x, labels=x).loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trainable and all(".logits." in n for n in trainable)
    assert with_grad == trainable
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n in with_grad)
    for m in models:
        m.source.close()


def test_somf_writes_binary_masked_task_vectors(llms, tmp_path):
    from safeadapt.repair.api import repair

    rec = {"repair_method": "somf", "adapted": str(llms["adapted"]), "aligned": str(llms["aligned"]),
           "parameters": {"steps": 2, "batch_size": 2, "lr": 0.5}, "filters": ["self_attn"],
           "calibration": {"pairs": pairs(tmp_path / "pairs.jsonl")}}
    out = repair(rec, tmp_path / "o", seed=0)
    o, ad, al = (load_file(Path(d) / "model.safetensors") for d in (out, llms["adapted"], llms["aligned"]))
    rep = json.loads((out / "safeadapt_provenance.json").read_text())["repair_report"]
    assert set(rep) == {f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(2) for p in "qkvo"}
    partial = 0
    for k in ad:
        tau = ad[k] - al[k]
        if k not in rep:
            assert torch.allclose(o[k], ad[k], atol=1e-6), k  # unmasked single task vector = the adapted model
            continue
        b = ((o[k] - al[k]).abs() > 1e-7).float()
        mean = b.mean()
        assert abs(float(mean) - rep[k]["kept"][0]) < 1e-5
        assert torch.allclose(o[k], al[k] + b * tau / mean, atol=1e-5), k
        partial += 0 < float(mean) < 1
    assert partial > 0, "lr 0.5 for 2 steps should move some logits across 0"
    assert "SOMF masks on 8 tensors keep" in (out / "README.md").read_text()
    # seeded: the same run gives the same model
    o2 = load_file(repair(rec, tmp_path / "o2", seed=0) / "model.safetensors")
    assert all(torch.equal(o[k], o2[k]) for k in o)


def test_somf_needs_pairs(llms, tmp_path):
    from safeadapt.core.errors import SafeAdaptError
    from safeadapt.repair.api import repair

    with pytest.raises(SafeAdaptError, match="calibration.pairs"):
        repair(
            {"repair_method": "somf", "adapted": str(llms["adapted"]), "aligned": str(llms["aligned"])}, tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()
