"""`safeadapt repair` on bad input: one `error:` line, non-zero exit, no output directory (nor temp
directory) left behind; and a good run through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_merge_cli import assert_clean_failure
from typer.testing import CliRunner

from safeadapt.cli import app
from safeadapt.io.tiny import build_tiny_llm


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("rcli")
    return {
        "aligned": build_tiny_llm(d / "aligned", seed=0),
        "adapted": build_tiny_llm(d / "adapted", seed=1),
        "unaligned": build_tiny_llm(d / "unaligned", seed=2),
        "qwen": build_tiny_llm(d / "qwen", seed=3, arch="qwen2"),
    }


def write(tmp_path: Path, cfg: dict) -> Path:
    p = tmp_path / "repair.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def run(*args):
    res = CliRunner().invoke(app, ["repair", *map(str, args)])
    err = (res.stderr or "") if hasattr(res, "stderr") else res.output
    return res.exit_code, err.strip()


def resta(models, **kw):
    return {"repair_method": "resta", "adapted": str(models["adapted"]), "aligned": str(models["aligned"]),
            "unaligned": str(models["unaligned"]), **kw}


def clean_failure(tmp_path: Path, cfg: dict, *needles: str) -> None:
    out = tmp_path / "out"
    assert_clean_failure(*run(write(tmp_path, cfg), "--out", out), out, *needles)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dir left behind"


def test_good_run_then_exists_then_overwrite(models, tmp_path):
    cfg = write(tmp_path, resta(models))
    out = tmp_path / "out"
    code, err = run(cfg, "--out", out)
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and (out / "repair_config.yml").is_file()
    code, err = run(cfg, "--out", out)
    assert code != 0 and "exists" in err and len(err.splitlines()) == 1
    assert run(cfg, "--out", out, "--overwrite")[0] == 0


def test_unknown_method(models, tmp_path):
    clean_failure(tmp_path, resta(models, repair_method="pruneit"), "unknown repair method 'pruneit'", "resta")


def test_unknown_parameter(models, tmp_path):
    clean_failure(tmp_path, resta(models, parameters={"gama": 0.5}), "unknown parameter 'gama'", "gamma")


def test_bad_parameter_value(models, tmp_path):
    cfg = {
        "repair_method": "antidote",
        "adapted": str(models["adapted"]),
        "parameters": {"mode": "magnitude", "ratio": 1.5},
    }
    clean_failure(tmp_path, cfg, "ratio")


def test_missing_unaligned_for_resta(models, tmp_path):
    cfg = resta(models)
    del cfg["unaligned"]
    clean_failure(tmp_path, cfg, "resta needs `unaligned:`")


def test_missing_calibration(models, tmp_path):
    clean_failure(tmp_path, {"repair_method": "antidote", "adapted": str(models["adapted"])}, "calibration.safety")


def test_empty_calibration_set(models, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    cfg = {"repair_method": "antidote", "adapted": str(models["adapted"]),
           "calibration": {"safety": str(tmp_path / "empty.jsonl")}}
    clean_failure(tmp_path, cfg, "empty.jsonl")


def test_mismatched_architectures(models, tmp_path):
    clean_failure(tmp_path, resta(models, unaligned=str(models["qwen"])), "architecture mismatch", str(models["qwen"]))


def test_missing_model(models, tmp_path):
    clean_failure(tmp_path, resta(models, aligned=str(tmp_path / "nope")), "nope")


def test_paths_relative_to_the_recipe(models, tmp_path, monkeypatch):
    import json
    import shutil

    d = tmp_path / "proj"
    shutil.copytree(models["adapted"], d / "adapted")
    (d / "harm.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "w1 w2 w3"},
                                                           {"role": "assistant", "content": "w4 w5 w6 w7"}]}) + "\n")
    (d / "r.yaml").write_text(yaml.safe_dump({"repair_method": "antidote", "adapted": "adapted",
                                              "calibration": {"safety": "harm.jsonl"}}))
    monkeypatch.chdir(tmp_path)
    code, err = run(d / "r.yaml", "--out", tmp_path / "out")
    assert code == 0, err
    assert "w1" not in err and (tmp_path / "out" / "model.safetensors").is_file()
