"""Output hygiene of eval/judge: files and dirs honour the umask, an eval that fails while
loading the model leaves no output directory, SAFEADAPT_NO_PROGRESS=1 silences the libraries'
tqdm bars too, `--help` documents every option, the --dataset syntax and every adapter, and
--threads auto never asks for more threads than there are idle cores."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny import FakeJudge, ScriptedBackend
from typer.testing import CliRunner

from safeadapt.cli import app
from safeadapt.data.schema import Sample

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_outputs_honour_umask(tmp_path, umask_022):
    from safeadapt.core.atomic import atomic_dir, atomic_write_text

    f = atomic_write_text(tmp_path / "a.txt", "x")
    assert _mode(f) == 0o644
    with atomic_dir(tmp_path / "d") as d:
        (d / "w.safetensors").write_bytes(b"0")
    assert _mode(tmp_path / "d") == 0o755 and _mode(tmp_path / "d" / "w.safetensors") == 0o644
    os.umask(0o027)
    assert _mode(atomic_write_text(tmp_path / "b.txt", "x")) == 0o640


def test_eval_outputs_are_group_readable(tmp_path, umask_022):
    from safeadapt.eval.runner import evaluate

    data = [Sample(id=f"h{i}", prompt=f"harmful {i}", label="harmful") for i in range(3)]
    evaluate(
        ScriptedBackend(),
        ["text-safety"],
        tmp_path / "o",
        judge=FakeJudge(),
        datasets={"text-safety": data},
        bootstrap=0,
    )
    for name in ("results.json", "generations.jsonl"):
        assert _mode(tmp_path / "o" / name) == 0o644, name
    assert _mode(tmp_path / "o") == 0o755


def test_merged_weights_honour_umask(tmp_path, umask_022):
    import yaml

    from safeadapt.io.tiny import build_tiny_llm

    base, other = build_tiny_llm(tmp_path / "base", seed=0), build_tiny_llm(tmp_path / "a", seed=1)
    rec = tmp_path / "m.yaml"
    rec.write_text(yaml.safe_dump({"merge_method": "linear", "models": [
        {"model": str(base), "parameters": {"weight": 0.5}}, {"model": str(other), "parameters": {"weight": 0.5}}]}))
    r = runner.invoke(app, ["merge", str(rec), "--out", str(tmp_path / "merged")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "merged"
    assert _mode(out) == 0o755
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert all(_mode(p) == 0o644 for p in files), {p.name: oct(_mode(p)) for p in files}


def test_eval_bad_model_leaves_no_output_dir(tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["eval", str(tmp_path / "no-such-model"), "--suite", "text-safety", "--out", str(out),
                            "--threads", "1"])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert not out.exists()


def test_no_progress_switch_silences_library_bars():
    code = ("import tqdm.auto, transformers\n"  # libraries imported before safeadapt
            "import safeadapt.eval.runner\n"
            "import datasets, huggingface_hub\n"
            "from tqdm.auto import tqdm\n"
            "import transformers.utils.logging as tl\n"
            "print(tqdm(range(2)).disable, tl.is_progress_bar_enabled(), datasets.is_progress_bar_enabled(),"
            " huggingface_hub.utils.are_progress_bars_disabled())\n")
    env = {**os.environ, "SAFEADAPT_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}
    for k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False", "True"]
    assert "it/s" not in r.stderr


def _options(cmd_name: str):
    import typer.main

    cmd = typer.main.get_command(app).commands[cmd_name]  # type: ignore[attr-defined]
    return cmd


@pytest.mark.parametrize("name", ["eval", "judge"])
def test_help_documents_every_option(name):
    cmd = _options(name)
    undocumented = [p.name for p in cmd.params if not (getattr(p, "help", None) or "").strip()]
    assert not undocumented, undocumented


def test_eval_help_shows_dataset_syntax_and_every_adapter():
    from safeadapt.data.adapters import ADAPTERS

    r = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "--dataset SUITE=SPEC" in text and "over-refusal=xstest:" in text
    for a in ADAPTERS.names():
        assert a in text, a
    assert "SAFEADAPT_NO_PROGRESS=1" in text


def test_auto_threads_leaves_busy_cores_alone(monkeypatch):
    from safeadapt.core import runtime

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(runtime, "_cpu_busy_fraction", lambda interval=0.2: 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert runtime.auto_threads() == 2  # quiet 2-core machine: both cores
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    assert runtime.auto_threads() == 1  # one core busy elsewhere: one thread
    monkeypatch.setattr(runtime, "_cpu_busy_fraction", lambda interval=0.2: 0.5)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert runtime.auto_threads() == 1  # a job that just started (load average lags)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert runtime.auto_threads() == 1
    assert runtime.resolve_threads("3") == 3 and runtime.resolve_threads(None) is None
    from safeadapt.core.errors import SafeAdaptError

    with pytest.raises(SafeAdaptError, match="--threads"):
        runtime.resolve_threads("many")
