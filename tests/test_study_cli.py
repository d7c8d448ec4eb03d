"""`safeadapt run` / `safeadapt demo` commands: dry-run plan output, one-line errors with a
non-zero exit, a real run plus summary, and the demo driver with a quick profile."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import typer
from typer.testing import CliRunner

from safeadapt.study import commands
from safeadapt.world import commands as world_commands

FNS = '''
def make(ctx):
    (ctx.out / "x.txt").write_text(str(ctx.params["v"]))
'''

STUDY = """
name: cli
vars: {v: 1}
profiles: {quick: {v: 2}}
stages:
  a: {kind: python, params: {function: "fns.py:make", v: "${v}"}}
  b: {kind: python, inputs: {up: a}, params: {function: "fns.py:make", v: 3}, matrix: {x: [p, q]}}
"""


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None: ...

    commands.register(app)
    return app


def _write(tmp_path: Path, text: str = STUDY) -> Path:
    (tmp_path / "fns.py").write_text(FNS)
    f = tmp_path / "study.yaml"
    f.write_text(textwrap.dedent(text))
    return f


def test_dry_run_prints_plan_and_writes_nothing(tmp_path: Path) -> None:
    f = _write(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(_app(), ["run", str(f), "--out", str(out), "--dry-run"], terminal_width=200)
    assert r.exit_code == 0, r.output
    for s in ("a", "b:p", "b:q", "python", "to-run", "up=a", "0 cached, 3 to run"):
        assert s in r.output
    assert not out.exists()
    # after a run the plan says cached, with the same keys
    r2 = CliRunner().invoke(_app(), ["run", str(f), "--out", str(out)], terminal_width=200)
    assert r2.exit_code == 0, r2.output
    assert "study summary" in r2.output and "done" in r2.output
    rec = json.loads((out / "study.json").read_text())
    r3 = CliRunner().invoke(_app(), ["run", str(f), "--out", str(out), "--dry-run"], terminal_width=200)
    assert "3 cached, 0 to run" in r3.output
    for st in rec["stages"]:
        assert st["key"][:12] in r3.output


def test_overrides_from_the_command_line(tmp_path: Path) -> None:
    f = _write(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(_app(), ["run", str(f), "--out", str(out), "--set", "v=7", "--seed", "4"])
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "study.json").read_text())
    assert rec["seed"] == 4 and rec["vars"] == {"v": 7}
    assert (out / rec["stages"][0]["dir"] / "x.txt").read_text() == "7"


def test_errors_are_one_line_and_nonzero(tmp_path: Path) -> None:
    f = _write(tmp_path, STUDY.replace("inputs: {up: a}", "inputs: {up: nope}"))
    out = tmp_path / "out"
    r = CliRunner().invoke(_app(), ["run", str(f), "--out", str(out)])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'nope'" in lines[0]
    assert not out.exists()
    # a failing stage: non-zero, and its error line names the stage
    (tmp_path / "fns.py").write_text(FNS + "\ndef bad(ctx):\n    raise ValueError('nope')\n")
    f2 = tmp_path / "s2.yaml"
    f2.write_text("name: s\nstages:\n  x: {kind: python, params: {function: 'fns.py:bad'}}\n")
    r = CliRunner().invoke(_app(), ["run", str(f2), "--out", str(out)])
    assert r.exit_code != 0 and "error: stage 'x' (python) failed: ValueError: nope" in r.output


def test_demo_driver_quick_profile_and_fallback_summary(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    f = _write(tmp_path)
    out = tmp_path / "demo"
    world_commands.run_demo(out, seed=3, quick=True, study_file=f)
    rec = json.loads((out / "study.json").read_text())
    assert rec["profile"] == "quick" and rec["seed"] == 3 and rec["status"] == "complete"
    assert (out / rec["stages"][0]["dir"] / "x.txt").read_text() == "2"
    no_quick = tmp_path / "nq.yaml"
    no_quick.write_text("name: s\nstages:\n  a: {kind: python, params: {function: 'fns.py:make', v: 1}}\n")
    import pytest

    from safeadapt.core.errors import SafeAdaptError

    with pytest.raises(SafeAdaptError, match="--quick needs a 'quick' profile"):
        world_commands.run_demo(tmp_path / "d2", quick=True, study_file=no_quick)
