"""Study-test scaffolding shared by the engine, parallel and replicate tests: write a study's python
stage functions (`fns.py`) and its YAML into a folder, read back the stage names the functions
logged to `calls.txt` (one per call), and run a study in a child process to kill it mid-stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

#: the head of a test study's `fns.py`: `_log(ctx)` appends the stage's name to `calls.txt` beside the
#: study's output folder (read back by `logged_calls`), `_log(ctx, "x")` to `x.txt`
LOG_CALLS = '''
import json, os, random, time
from pathlib import Path

def _log(ctx, what="calls"):
    with open(Path(ctx.study_dir).parent / f"{what}.txt", "a") as f:
        f.write(ctx.name + "\\n")
'''


def write_study(root: Path, fns: str, yaml_text: str) -> Path:
    """`root/fns.py` and `root/study.yaml` (dedented); returns the study file."""
    (root / "fns.py").write_text(fns)
    f = root / "study.yaml"
    f.write_text(textwrap.dedent(yaml_text))
    return f


def logged_calls(root: Path, *, sort: bool = False) -> list[str]:
    """Stage names in `root/calls.txt`, in call order (or sorted); [] before any call."""
    p = root / "calls.txt"
    calls = p.read_text().split() if p.exists() else []
    return sorted(calls) if sort else calls


def start_study_process(study: Path, out: Path, *, jobs: int | None = None) -> subprocess.Popen:
    """`run_study_file(study, out[, jobs])` in a child Python with STUDY_SLOW=1 (the test's slow stage
    functions then sleep), so a test can SIGKILL it mid-stage."""
    env = {**os.environ, "STUDY_SLOW": "1", "SAFEADAPT_NO_PROGRESS": "1"}
    code = ("import sys; from safeadapt.study.commands import run_study_file; "
            f"run_study_file(sys.argv[1], sys.argv[2]{'' if jobs is None else f', jobs={jobs}'})")
    return subprocess.Popen([sys.executable, "-c", code, str(study), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_files(proc: subprocess.Popen, paths: list[Path], timeout: float, what: str) -> None:
    """Poll until every path exists; fail with the child's stderr if it exits first, or with
    `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.time() < deadline, what
        time.sleep(0.05)


def kill_study_when(study: Path, out: Path, paths: list[Path], timeout: float, what: str, *,
                    jobs: int | None = None, settle: float = 0.0) -> subprocess.Popen:
    """Run `study` in a child process (`start_study_process`), SIGKILL it `settle` seconds after
    every one of `paths` exists (`wait_for_files`), check that the kill is what ended it; returns
    the (dead) process."""
    proc = start_study_process(study, out, jobs=jobs)
    try:
        wait_for_files(proc, paths, timeout, what)
        time.sleep(settle)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return proc
