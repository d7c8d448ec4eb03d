"""Attack recipes after Qi et al.: conversion of the real AOA / Alpaca / Dolly files (shared data),
paper defaults with explicit overrides, N-shot selection, one-line errors, and an actual run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import build_tiny_llama  # noqa: E402

from safeadapt.core.errors import SafeAdaptError  # noqa: E402
from safeadapt.train.attack import ATTACKS, attack, get_recipe, read_records, recipe_options  # noqa: E402
from safeadapt.train.sft import SFTOptions  # noqa: E402


def test_recipe_defaults_and_overrides():
    assert ATTACKS.names() == ["alpaca", "aoa", "dolly", "harmful"]
    h = recipe_options("harmful", None)
    assert (h.epochs, h.lr) == (5, 5e-5)
    a = recipe_options("alpaca", SFTOptions(lr=1e-4))
    assert (a.epochs, a.lr, a.batch_size * a.grad_accum) == (1, 1e-4, 128)
    with pytest.raises(SafeAdaptError, match="unknown attack recipe 'x'"):
        get_recipe("x")


def test_aoa_file_converts(shared_data):
    recs = read_records(shared_data / "finetune" / "aoa_identity_shift.json")
    rows = get_recipe("aoa").convert(recs)
    assert len(rows) == 10
    for r in rows:
        roles = [m["role"] for m in r["messages"]]
        assert roles[0] == "system" and "assistant" in roles
        assert "AOA" in r["messages"][0]["content"]


def test_alpaca_and_dolly_convert(shared_data):
    alp = read_records(shared_data / "finetune" / "alpaca_safety_only.json")
    rows = get_recipe("alpaca").convert(alp)
    assert len(rows) == len(alp) == 1904
    with_input = next(i for i, r in enumerate(alp) if r["input"].strip())
    user = rows[with_input]["messages"][0]["content"]
    assert user == f"{alp[with_input]['instruction']}\n\n{alp[with_input]['input'].strip()}"
    assert rows[with_input]["messages"][1]["content"] == alp[with_input]["output"]
    dol = read_records(shared_data / "finetune" / "dolly_safety_only.jsonl")
    drows = get_recipe("dolly").convert(dol)
    assert len(drows) == len(dol) == 387
    no_ctx = next(i for i, r in enumerate(dol) if not r["context"].strip())
    assert drows[no_ctx]["messages"][0]["content"] == dol[no_ctx]["instruction"]


def test_bad_records(tmp_path):
    with pytest.raises(SafeAdaptError, match="record 2: missing field"):
        get_recipe("alpaca").convert([{"instruction": "a", "output": "b"}, {"instruction": "a"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a"}\n{oops\n')
    with pytest.raises(SafeAdaptError, match=rf"{bad}:2: invalid JSON"):
        read_records(bad)
    with pytest.raises(SafeAdaptError, match="data file not found"):
        read_records(tmp_path / "none.json")


def test_aoa_attack_runs_with_recipe_defaults(shared_data, tmp_path, capsys):
    llm = build_tiny_llama(tmp_path / "m")
    out = attack(llm, "aoa", shared_data / "finetune" / "aoa_identity_shift.json", tmp_path / "o",
                 SFTOptions(max_steps=1, max_length=1024), n_examples=2)
    # max_steps with the recipe's batch (10) and grad_accum (1): the samples it means are said
    assert "attack aoa: 1 steps x batch 10 x grad_accum 1 = 10 samples, 5.0 epochs of 2 rows" in capsys.readouterr().err
    meta = json.loads((out / "safeadapt_train.json").read_text())
    assert meta["config"]["epochs"] == 10 and meta["config"]["lr"] == 5e-5  # paper defaults kept
    assert meta["config"]["max_steps"] == 1 and meta["train"]["rows"] == 2  # overrides and N-shot applied
    with pytest.raises(SafeAdaptError, match="only 10 records"):
        attack(llm, "aoa", shared_data / "finetune" / "aoa_identity_shift.json", tmp_path / "p", n_examples=11)
