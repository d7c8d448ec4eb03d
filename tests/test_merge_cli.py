"""`safeadapt merge` on bad input: each case prints one `error:` line naming the file or tensor,
exits non-zero and leaves no output directory (nor a partial temp directory) behind."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from safeadapt.cli import app
from safeadapt.io.tiny import build_tiny_llm


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return {"base": build_tiny_llm(d / "base", seed=0), "a": build_tiny_llm(d / "a", seed=1),
            "qwen": build_tiny_llm(d / "qwen", seed=2, arch="qwen2")}


def variant(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    sd = load_file(dst / "model.safetensors")
    edit(sd)
    save_file(sd, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def recipe(tmp_path: Path, base: Path, other: Path, **extra) -> Path:
    cfg = {"merge_method": "task_arithmetic", "base_model": str(base),
           "models": [{"model": str(other), "parameters": {"weight": 0.5}}], **extra}
    p = tmp_path / "merge.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def run(*args: str):
    res = CliRunner().invoke(app, ["merge", *map(str, args)])
    err = (res.stderr or "") if hasattr(res, "stderr") else res.output
    return res.exit_code, err.strip()


def assert_clean_failure(code: int, err: str, out: Path, *needles: str) -> None:
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*")), "partial temp dir left behind"


def test_good_merge_then_exists_then_overwrite(models, tmp_path):
    cfg = recipe(tmp_path, models["base"], models["a"])
    out = tmp_path / "out"
    code, err = run(cfg, "--out", out)
    assert code == 0 and (out / "model.safetensors").is_file()
    code, err = run(cfg, "--out", out)
    assert code != 0 and "output path exists" in err and str(out) in err
    code, _ = run(cfg, "--out", out, "--overwrite", "--max-shard-size", "2KB")
    assert code == 0 and (out / "model.safetensors.index.json").is_file() and not (out / "model.safetensors").exists()


def test_missing_tensor(models, tmp_path):
    bad = variant(models["a"], tmp_path / "m", lambda sd: sd.pop("model.layers.1.self_attn.k_proj.weight"))
    out = tmp_path / "out"
    assert_clean_failure(*run(recipe(tmp_path, models["base"], bad), "--out", out), out,
                         "model.layers.1.self_attn.k_proj.weight", str(bad))


def test_shape_mismatch(models, tmp_path):
    k = "model.layers.0.mlp.up_proj.weight"
    bad = variant(models["a"], tmp_path / "m", lambda sd: sd.__setitem__(k, sd[k].t().contiguous()))
    out = tmp_path / "out"
    assert_clean_failure(
        *run(recipe(tmp_path, models["base"], bad), "--out", out), out, "shape mismatch", k, "[32, 16]", "[16, 32]"
    )


def test_dtype_mismatch_needs_explicit_dtype(models, tmp_path):
    bad = variant(models["a"], tmp_path / "m", lambda sd: sd.update({n: t.to(torch.bfloat16) for n, t in sd.items()}))
    out = tmp_path / "out"
    assert_clean_failure(
        *run(recipe(tmp_path, models["base"], bad), "--out", out), out, "different dtypes", "bfloat16", "dtype:"
    )
    code, err = run(recipe(tmp_path, models["base"], bad, dtype="float32"), "--out", out)
    assert code == 0, err


@pytest.mark.parametrize("damage,needle", [
    (lambda b: b[:-10], "truncated"),
    (lambda b: b[:4], "corrupt"),
    (lambda b: b[:8] + b"{not json" + b[17:], "header is not valid JSON"),
    (lambda b: (10**9).to_bytes(8, "little") + b[8:], "exceeds file size"),
])
def test_corrupt_or_truncated_safetensors(models, tmp_path, damage, needle):
    bad = tmp_path / "m"
    shutil.copytree(models["a"], bad)
    f = bad / "model.safetensors"
    f.write_bytes(damage(f.read_bytes()))
    out = tmp_path / "out"
    assert_clean_failure(*run(recipe(tmp_path, models["base"], bad), "--out", out), out, needle, str(f))


def test_architecture_mismatch(models, tmp_path):
    out = tmp_path / "out"
    assert_clean_failure(*run(recipe(tmp_path, models["base"], models["qwen"]), "--out", out), out,
                         "architecture mismatch", "llama", "qwen2")


def test_unknown_method_and_parameter(models, tmp_path):
    out = tmp_path / "out"
    cfg = recipe(tmp_path, models["base"], models["a"], merge_method="frankenstein")
    assert_clean_failure(*run(cfg, "--out", out), out, "unknown merge method 'frankenstein'", "ties")
    cfg = recipe(tmp_path, models["base"], models["a"], parameters={"densty": 0.5})
    assert_clean_failure(*run(cfg, "--out", out), out, "unknown parameter 'densty'", str(cfg))


def test_missing_model_offline_hub_and_pickle(models, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert_clean_failure(*run(recipe(tmp_path, models["base"], tmp_path / "nope"), "--out", out), out,
                         "model path does not exist", str(tmp_path / "nope"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_failure(*run(recipe(tmp_path, models["base"], "someorg/some-model-7b"), "--out", out), out,
                         "someorg/some-model-7b", "offline", "--local-dir")
    pk = tmp_path / "pk"
    shutil.copytree(models["a"], pk)
    torch.save(load_file(pk / "model.safetensors"), pk / "pytorch_model.bin")
    (pk / "model.safetensors").unlink()
    cfg = recipe(tmp_path, models["base"], pk)
    assert_clean_failure(*run(cfg, "--out", out), out, "pickle", "--allow-pickle", str(pk))
    code, err = run(cfg, "--out", out, "--allow-pickle")
    assert code == 0, err


def test_disk_full_mid_write_leaves_nothing(models, tmp_path, monkeypatch):
    from safeadapt.io import writer as w

    real = w.StreamingShardWriter.write
    calls = {"n": 0}

    def flaky(self, name, tensor):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.out_dir / "model.safetensors"))
        return real(self, name, tensor)

    monkeypatch.setattr(w.StreamingShardWriter, "write", flaky)
    out = tmp_path / "out"
    code, err = run(recipe(tmp_path, models["base"], models["a"]), "--out", out)
    assert calls["n"] == 5
    assert_clean_failure(code, err, out, "no space left on device", "model.safetensors")
