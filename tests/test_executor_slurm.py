"""`--executor slurm` on a real single-node SLURM (tests/_slurm.py starts munged, slurmctld and
slurmd as this test's processes): the outputs equal a local run byte for byte, each stage is its
own job, a SIGKILLed driver's re-run waits for the running job instead of submitting it again, and
a failing job prints its log tail. Without root or the Debian packages it skips, saying why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _slurm  # noqa: E402
from _study_files import write_study  # noqa: E402

from safeadapt.core.errors import SafeAdaptError  # noqa: E402
from safeadapt.study.commands import run_study_file  # noqa: E402
from safeadapt.study.engine import plan_study  # noqa: E402
from safeadapt.study.executors.resources import describe, sbatch_resources  # noqa: E402
from safeadapt.study.executors.slurm import job_parameters  # noqa: E402
from safeadapt.study.schema import load_study  # noqa: E402
from safeadapt.study.status import print_status  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

FNS = '''
import hashlib, os, sys, time
from pathlib import Path

def _log(ctx):
    with open(Path(ctx.study_dir).parent / "calls.txt", "a") as f:
        f.write(f"{ctx.name} {os.environ.get('SLURM_JOB_ID', '-')}\\n")

def make(ctx):
    _log(ctx)
    gate = Path(ctx.study_dir).parent / f"go_{ctx.name}"
    while ctx.params.get("gate") and not gate.exists():  # the test opens the gate
        time.sleep(0.1)
    (ctx.out / "value.txt").write_text(f"{ctx.name} seed={ctx.seed} v={ctx.params['v']}\\n")

def join(ctx):
    _log(ctx)
    parts = [(ctx.input(k) / "value.txt").read_text() for k in ("x", "y")]
    (ctx.out / "value.txt").write_text("".join(parts))
    (ctx.out / "digest.txt").write_text(hashlib.sha256("".join(parts).encode()).hexdigest())

def bad(ctx):
    _log(ctx)
    for i in range(1, 41):
        print(f"LOG-LINE-{i}", flush=True)
    print("ERR-LINE-last", file=sys.stderr, flush=True)
    raise RuntimeError("boom in the job")

def crash(ctx):
    _log(ctx)
    os._exit(3)  # the job's process dies under the stage: no result ever comes back
'''

STUDY = """
name: sl
seed: 3
slurm: {time: 10}
stages:
  a: {kind: python, params: {function: "fns.py:make", v: 1}, threads: 1, memory_gb: 0.25}
  b: {kind: python, params: {function: "fns.py:make", v: 2, gate: true}, threads: 1, memory_gb: 0.25}
  c: {kind: python, inputs: {x: a, y: b}, params: {function: "fns.py:join"}, memory_gb: 0.25}
"""

BAD = """
name: slbad
stages:
  bad: {kind: python, params: {function: "fns.py:bad"}, memory_gb: 0.25}
  crash: {kind: python, params: {function: "fns.py:crash"}, memory_gb: 0.25}
  held: {kind: python, params: {function: "fns.py:make", v: 0, gate: true}, memory_gb: 0.25}
"""


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_slurm.Cluster]:
    reason = _slurm.unavailable()
    if reason:
        if os.environ.get("SAFEADAPT_REQUIRE_SLURM") == "1":  # CI: the real-SLURM test must run
            pytest.fail(reason)
        pytest.skip(reason)
    c = _slurm.start(tmp_path_factory.mktemp("slurm"))
    old = {k: os.environ.get(k) for k in ("SLURM_CONF", "SAFEADAPT_SLURM_POLL_S")}
    os.environ.update({"SLURM_CONF": str(c.conf), "SAFEADAPT_SLURM_POLL_S": "0.5"})
    try:
        yield c
    finally:
        c.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cli(*args: str, stdout: Any = subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x),
           "SAFEADAPT_NO_PROGRESS": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "safeadapt", *args], env=env, stdout=stdout,
                            stderr=subprocess.STDOUT, text=True)


def _run(*args: str, timeout: float = 120) -> tuple[int, str]:
    p = _cli(*args)
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def _calls(root: Path) -> list[tuple[str, str]]:
    f = root / "calls.txt"
    return [tuple(ln.split()) for ln in f.read_text().splitlines()] if f.exists() else []  # type: ignore[misc]


def _files(out: Path) -> dict[str, bytes]:
    """Every output file of every stage but the markers (they hold times and hosts)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "stages").rglob("*"))
            if p.is_file() and p.name != "_stage.json"}


def _jobs(out: Path) -> dict[str, str]:
    rec = json.loads((out / "study.json").read_text())
    return {s["name"]: s["job"]["id"] for s in rec["stages"] if s.get("job")}


def test_slurm_run_equals_a_local_run_and_each_stage_is_one_job(cluster: _slurm.Cluster, tmp_path: Path) -> None:
    roots = {}
    for ex in ("local", "slurm"):
        roots[ex] = tmp_path / ex
        roots[ex].mkdir()
        f = write_study(roots[ex], FNS, STUDY)
        (roots[ex] / "go_b").write_text("open")
        if ex == "local":
            run_study_file(f, roots[ex] / "out", jobs=1)
        else:
            rc, log = _run("run", str(f), "--out", str(roots[ex] / "out"), "--executor", ex)
            assert rc == 0, log
    local, slurm = roots["local"] / "out", roots["slurm"] / "out"
    outputs = [k for k in _files(local) if not k.endswith("/log.txt")]  # (a stage's log.txt, when it printed)
    assert _files(slurm) == _files(local) and len(outputs) == 4  # same dirs (keys), same bytes
    rec = json.loads((slurm / "study.json").read_text())
    assert rec["executor"] == "slurm" and rec["status"] == "complete"
    jobs = _jobs(slurm)
    assert sorted(jobs) == ["a", "b", "c"] and len(set(jobs.values())) == 3
    # each stage ran inside the job recorded for it, and SLURM knows that job by the stage's name
    assert sorted(_calls(roots["slurm"])) == sorted((n, j) for n, j in jobs.items())
    for name, jid in jobs.items():
        info = cluster.run("scontrol", "show", "job", jid)
        assert f"JobName=safeadapt:sl:{name}" in info and "JobState=COMPLETED" in info, info
        assert "MinMemoryNode=256M" in info and "TimeLimit=00:10:00" in info, info  # memory_gb and slurm.time
    assert all(c[1] == "-" for c in _calls(roots["local"]))
    # --status shows the job of every stage; a re-run submits nothing
    rec = print_status(slurm)
    assert [(st["name"], st["state"], st["job"]["id"], st["job_state"]) for st in rec["stages"]] == \
        [(n, "done", jobs[n], "COMPLETED") for n in ("a", "b", "c")] and not rec["active"]
    plan = run_study_file(roots["slurm"] / "study.yaml", slurm, executor="slurm")
    assert [p.status for p in plan] == ["cached"] * 3 and len(_calls(roots["slurm"])) == 3
    assert _jobs(slurm) == jobs  # a cached stage still names the job that built it


def test_a_killed_driver_is_resumed_without_submitting_a_stage_twice(cluster: _slurm.Cluster, tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, STUDY)
    out = tmp_path / "out"
    driver = _cli("run", str(f), "--out", str(out), "--executor", "slurm", stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not ({n for n, _ in _calls(tmp_path)} >= {"a", "b"} and "b" in _jobs(out)):
            assert driver.poll() is None and time.time() < deadline, "stages a and b never ran as jobs"
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    b_job = _jobs(out)["b"]
    assert cluster.run("squeue", "-h", "-j", b_job, "-o", "%T").strip() == "RUNNING"  # b's job outlived its driver
    with pytest.raises(SafeAdaptError, match=f"still running: .*b \\(job {b_job}\\); re-run with --executor slurm"):
        run_study_file(f, out, executor="local")  # a local run must not build what the job is building
    log = tmp_path / "rerun.log"
    with open(log, "w") as fh:
        rerun = _cli("run", str(f), "--out", str(out), "--executor", "slurm", stdout=fh)
    try:
        deadline = time.time() + 60
        while f"waiting for SLURM job {b_job} of b" not in log.read_text():
            assert rerun.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.1)
        (tmp_path / "go_b").write_text("open")  # only now may b finish: the re-run must wait for it
        assert rerun.wait(timeout=90) == 0, log.read_text()
    finally:
        if rerun.poll() is None:
            rerun.kill()
    calls = _calls(tmp_path)
    assert sorted(n for n, _ in calls) == ["a", "b", "c"], calls  # no stage ran twice
    ran_in = dict(calls)  # stage -> the job it ran in: three jobs, b's the one the killed driver submitted
    assert len(set(ran_in.values())) == 3 and ran_in["b"] == b_job and _jobs(out) == ran_in
    assert json.loads((out / "study.json").read_text())["status"] == "complete"
    assert (out / "stages").is_dir() and not [p for p in (out / "stages").iterdir() if p.name.startswith(".")]


def test_ctrl_c_cancels_the_running_jobs(cluster: _slurm.Cluster, tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, STUDY)
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        driver = _cli("run", str(f), "--out", str(out), "--executor", "slurm", "--only", "b", stdout=fh)
    try:
        deadline = time.time() + 60
        while not (_calls(tmp_path) and "b" in _jobs(out)):
            assert driver.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.1)
        rec = print_status(out)  # while it runs: the stage, its job and SLURM's word on it, a driver active
        assert rec["active"] and [(st["name"], st["state"], st["job_state"]) for st in rec["stages"]] == \
            [("b", "running", "RUNNING")], rec
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=30) == 130, log.read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
    jid = _jobs(out)["b"]
    assert f"cancelled SLURM job(s) {jid}" in log.read_text()
    deadline = time.time() + 30
    while cluster.run("squeue", "-h", "-j", jid, "-o", "%T").strip() not in ("CANCELLED", ""):
        assert time.time() < deadline, "the job outlived the interrupted study"
        time.sleep(0.2)
    rec = json.loads((out / "study.json").read_text())
    assert rec["status"] == "interrupted" and rec["stages"][0]["status"] == "interrupted"


def test_failing_jobs_print_the_end_of_their_logs(cluster: _slurm.Cluster, tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, BAD)
    driver = _cli("run", str(f), "--out", str(tmp_path / "out"), "--executor", "slurm", "--keep-going")
    try:
        deadline = time.time() + 90
        while "held" not in {n for n, _ in _calls(tmp_path)}:
            assert driver.poll() is None and time.time() < deadline, driver.communicate()[0]
            time.sleep(0.1)
        cluster.run("scancel", _jobs(tmp_path / "out")["held"])  # from outside, as preemption would
        log, _ = driver.communicate(timeout=90)
    finally:
        if driver.poll() is None:
            driver.kill()
    jobs = _jobs(tmp_path / "out")
    assert driver.returncode == 2, log  # failed stages, not an interrupted study
    # a stage that raised: its error, job id and the end of its log (what it printed)
    assert "LOG-LINE-40" in log and "ERR-LINE-last" in log, log
    assert "LOG-LINE-2\n" not in log  # the tail, not the whole log
    # a job that died under its stage: SLURM's verdict and the end of the job's own log (srun's error)
    assert f"SLURM job {jobs['crash']} of stage crash failed; the end of its job log:" in log, log
    assert "exit code 3" in log and "without finishing the stage" in log, log
    err = [ln for ln in log.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "boom in the job" in err[0] and f"SLURM job {jobs['bad']}" in err[0], log
    assert "(+2 more failed)" in err[0]
    held = next(s for s in json.loads((tmp_path / "out" / "study.json").read_text())["stages"] if s["name"] == "held")
    assert held["status"] == "failed" and "interrupted in its job" in held["error"], held


# ---------------------------------------------------------------------------- no cluster needed


RES = """
name: res
slurm: {partition: cpu, time: 30, account: lab}
vars: {part: gpu}
stages:
  prep: {kind: python, params: {function: "fns.py:make", v: 1}, threads: 4, memory_gb: 8}
  train:
    kind: python
    params: {function: "fns.py:make", v: 2, launch: {config: acc.yaml}}
    slurm: {partition: "${part}", time: "2-00:00:00", constraint: a100, sbatch: ["--exclusive", "--mail-type=END"]}
  tune: {kind: python, params: {function: "fns.py:make", v: 3, launch: {config: acc.yaml, num_processes: 2}}, gpus: 0}
"""


def test_sbatch_resources_of_each_stage_and_unchanged_keys(tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, RES)
    (tmp_path / "acc.yaml").write_text("num_processes: 4\n")
    study = load_study(f)
    res = {s.name: sbatch_resources(study, s, None) for s in study.stages}
    assert res["prep"]["cpus_per_task"] == 4 and res["prep"]["mem"] == "8192M" and "gpus_per_node" not in res["prep"]
    assert (res["prep"]["partition"], res["prep"]["time"], res["prep"]["account"]) == ("cpu", 30, "lab")
    assert res["train"]["gpus_per_node"] == 4  # the accelerate config's processes
    assert (res["train"]["partition"], res["train"]["time"], res["train"]["constraint"]) == (
        "gpu",
        "2-00:00:00",
        "a100",
    )
    assert res["train"]["additional_parameters"] == {"exclusive": True, "mail_type": "END"}
    assert "gpus_per_node" not in res["tune"]  # gpus: 0 wins over launch
    assert sbatch_resources(study, study.stage("train"), {"partition": "big"})["partition"] == "big"  # CLI wins
    assert describe(res["train"])["other"] == "account=lab constraint=a100 --exclusive --mail-type=END"
    from submitit.slurm.slurm import _make_sbatch_string

    script = _make_sbatch_string(
        command="python -m x", folder=tmp_path / "j", **job_parameters(study, study.stage("train"))
    )
    for line in ("--gpus-per-node=4", "--time=2-00:00:00", "--partition=gpu", "--constraint=a100", "--account=lab",
                 "--exclusive", "--mail-type=END", "--ntasks-per-node=1", "--nodes=1"):
        assert f"#SBATCH {line}\n" in script, script  # a launch: stage is one task on one node with its GPUs
    assert f"export PYTHONPATH={ROOT}" in script
    prep = _make_sbatch_string(
        command="python -m x", folder=tmp_path / "j", **job_parameters(study, study.stage("prep"))
    )
    assert "#SBATCH --cpus-per-task=4\n" in prep and "srun --unbuffered" in prep and "--cpus-per-task=4 " in prep
    assert "#SBATCH --mem=8192M\n" in prep and "--gpus" not in prep
    # executor settings are not part of a stage's cache key
    bare = tmp_path / "bare"
    bare.mkdir()
    plain = RES.replace("slurm: {partition: cpu, time: 30, account: lab}\n", "").replace(", gpus: 0", "")
    plain = "\n".join(ln for ln in plain.splitlines() if "slurm: {partition:" not in ln)
    g = write_study(bare, FNS, plain)
    (bare / "acc.yaml").write_text("num_processes: 4\n")
    assert [p.key for p in plan_study(study, tmp_path / "o")] == [p.key for p in plan_study(load_study(g), bare / "o")]


def _invoke(*args: str) -> tuple[int, str]:
    """`safeadapt ARGS` in this process (the study commands only)."""
    import typer
    from typer.testing import CliRunner

    from safeadapt.study import commands

    app = typer.Typer()
    app.callback()(lambda: None)
    commands.register(app)
    r = CliRunner().invoke(app, list(args), terminal_width=200)
    return r.exit_code, r.output


def test_dry_run_shows_the_sbatch_resources_and_bad_settings_are_one_line(tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, RES)
    (tmp_path / "acc.yaml").write_text("num_processes: 4\n")
    o = str(tmp_path / "o")
    rc, out = _invoke("run", str(f), "--out", o, "--dry-run", "--executor", "slurm", "--slurm-qos", "high")
    assert rc == 0, out
    jobs_table = out.split("SLURM jobs")[1]
    row = next(ln for ln in jobs_table.splitlines() if "│ train" in ln)
    assert all(x in row for x in ("gpu", "2-00:00:00", "│ 4 ", "qos=high")), row
    assert "--exclusive" in jobs_table and "│ prep" in jobs_table and "8G" in jobs_table and "30 min" in jobs_table
    for args, msg in [
        (["--slurm-partition", "x"], "--slurm-* options need --executor slurm"),
        (["--executor", "slurm", "--slurm-option", "exclusive"], "--slurm-option: Value error, 'exclusive'"),
        (["--executor", "slurm", "--slurm-time", "soon"], "--slurm-time: Value error, 'soon' is not a SLURM"),
        (["--executor", "pbs"], "unknown executor 'pbs'"),
    ]:
        rc, out = _invoke("run", str(f), "--out", o, *args)
        assert rc != 0 and out.count("\n") == 1 and msg in out, (args, out)
    assert not (tmp_path / "o").exists()  # nothing ran, nothing written
    write_study(tmp_path, FNS, RES.replace("time: 30", "time: soon"))
    rc, out = _invoke("run", str(f), "--out", o, "--dry-run")
    assert rc != 0 and out.count("\n") == 1 and "slurm.time" in out and "soon" in out, out
    rc, out = _invoke("run", "--out", o)
    assert rc != 0 and "give a study file and --out DIR (or --status DIR)" in out, out
    rc, out = _invoke("run", "--status", o)
    assert rc != 0 and f"no study.json in {o}" in out, out
