"""The output policy: a study's console shows its own progress rows, never the libraries' output; each
stage's prints, fd-level writes, subprocess output and logging land in its log.txt; a failing stage's
console message ends with its log's last lines; library noise (transformers' torchvision note) is
filtered on the console but kept in a stage log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _study_files import write_study  # noqa: E402

from safeadapt.cli import app  # noqa: E402
from safeadapt.core.console import capture_output, quiet_libraries, tail  # noqa: E402

FNS = '''
import logging, os, subprocess, sys

def noisy(ctx):
    print("PY-PRINT from", ctx.name)
    print("PY-STDERR", file=sys.stderr)
    os.write(1, b"FD1-WRITE\\n")
    os.write(2, b"FD2-WRITE\\n")
    subprocess.run(["echo", "SUBPROC-OUT"], check=True)
    logging.getLogger("transformers.modeling_utils").warning("LIB-WARNING Loading weights")
    logging.getLogger("transformers.utils.import_utils").warning(
        "`CLIPImageProcessor` requires torchvision (not installed); falling back")
    import warnings
    warnings.warn("PY-WARNING from the stage")
    from safeadapt.core.console import console
    console().print("RICH-PRINT from the stage")  # a stage's own console line (a search's trial rows)
    (ctx.out / "x.txt").write_text(ctx.name)

def boom(ctx):
    for i in range(30):
        print(f"boom line {i}")
    raise RuntimeError("kaput")
'''

STUDY = """
name: noisy
stages:
  a: {kind: python, params: {function: "fns.py:noisy"}}
  b: {kind: python, params: {function: "fns.py:noisy"}}
  bad: {kind: python, params: {function: "fns.py:boom"}}
"""

LIBRARY_LINES = ("PY-PRINT", "PY-STDERR", "FD1-WRITE", "FD2-WRITE", "SUBPROC-OUT", "LIB-WARNING", "torchvision",
                 "PY-WARNING")


def _check(out: Path, console_text: str) -> None:
    for name in ("a", "b"):
        [d] = [p for p in (out / "stages").iterdir() if p.name.startswith(f"{name}-")]
        log = (d / "log.txt").read_text()
        for line in LIBRARY_LINES:
            assert line in log, (name, line, log)
        assert f"PY-PRINT from {name}" in log
    for line in LIBRARY_LINES:
        assert line not in console_text, (line, console_text)
    assert "done" in console_text and "a (python)" in console_text
    # the failing stage: its log kept under logs/, its last lines on the console, then the last frame of
    # its traceback (the whole traceback is in logs/*.err)
    [failed_log] = list((out / "logs").glob("bad-*.log"))
    assert "boom line 29" in failed_log.read_text()
    assert "failed" in console_text and "boom line 29" in console_text and "RuntimeError: kaput" in console_text
    assert "boom line 0\n" not in console_text and "boom line 14\n" not in console_text  # only the tail (15)
    assert 'raise RuntimeError("kaput")' in console_text and "Traceback" not in console_text
    assert str(failed_log) in console_text.replace("\n", "")


def test_inline_study_console_is_quiet_and_logs_everything(tmp_path: Path) -> None:
    """`safeadapt run --jobs 1` as a real process: the stages run in it, the console on its fd 1."""
    f = write_study(tmp_path, FNS, STUDY)
    out = tmp_path / "out"
    env = {**os.environ, "SAFEADAPT_NO_PROGRESS": "1", "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "safeadapt", "run", str(f), "--out", str(out), "--jobs", "1",
                        "--keep-going"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0
    console_text = r.stdout + r.stderr
    _check(out, console_text)
    assert "stage 'bad' (python) failed: RuntimeError: kaput" in r.stderr  # the one-line error, last


def test_parallel_study_console_is_quiet_and_logs_everything(tmp_path: Path) -> None:
    """--jobs 2: stages run in worker processes; the console is the CLI's (here the test runner's)."""
    f = write_study(tmp_path, FNS, STUDY)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(f), "--out", str(out), "--jobs", "2", "--keep-going"],
                           env={"SAFEADAPT_NO_PROGRESS": "1", "COLUMNS": "200"})
    assert r.exit_code != 0
    _check(out, r.output)
    # in a worker even the stage's console prints go to its log (the worker's console is not the user's)
    assert "RICH-PRINT" not in r.output
    assert all("RICH-PRINT from the stage" in (d / "log.txt").read_text()
               for d in (out / "stages").iterdir() if d.name.startswith(("a-", "b-")))


def test_torchvision_note_is_filtered_on_the_console_but_kept_in_a_stage_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quiet_libraries()
    note = logging.getLogger("transformers.utils.import_utils")
    with caplog.at_level(logging.WARNING):
        note.warning("`CLIPImageProcessor` requires torchvision (not installed); falling back")
        note.warning("another transformers warning")
    assert [r.getMessage() for r in caplog.records] == ["another transformers warning"]
    with capture_output(tmp_path / "log.txt") as log:
        note.warning("`CLIPImageProcessor` requires torchvision (not installed); falling back")
        print("x" * 3 + "\r" + "progress 100%")
    assert "requires torchvision" in log.read_text()
    assert tail(log)[-1] == "progress 100%"  # a bar's carriage returns folded to its last state
    assert logging.getLogger("transformers").getEffectiveLevel() == logging.WARNING
