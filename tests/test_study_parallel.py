"""Parallel scheduler: independent stages really run at once in worker processes (a barrier that
deadlocks when run one at a time), the numbers equal a one-at-a-time run, study.json says what ran
alongside what, and a SIGKILL of the study process while two stages run leaves no orphan worker
and resumes with no stage redone or duplicated."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _study_files import logged_calls, start_study_process, wait_for_files, write_study  # noqa: E402

from safeadapt.study.engine import run_study  # noqa: E402
from safeadapt.study.scheduler import default_jobs, threads_per_job  # noqa: E402
from safeadapt.study.schema import load_study  # noqa: E402

FNS = '''
import json, os, random, time
from pathlib import Path

def _log(ctx, what="calls"):
    with open(Path(ctx.study_dir).parent / f"{what}.txt", "a") as f:
        f.write(ctx.name + "\\n")

def draw(ctx):
    _log(ctx)
    _draw(ctx)

def _draw(ctx):
    import numpy, torch
    (ctx.out / "draw.json").write_text(json.dumps({"random": random.random(), "numpy": float(numpy.random.rand()),
        "torch": float(torch.rand(1)), "threads": torch.get_num_threads(), "seed": ctx.seed,
        "ctx_threads": ctx.threads}))

def meet(ctx):
    """Wait until the other stage of the pair has started too: only a parallel run gets past."""
    _log(ctx)
    root = Path(ctx.study_dir).parent
    (root / f"started_{ctx.name}").write_text(str(os.getpid()))
    deadline = time.time() + 90
    while not (root / f"started_{ctx.params['other']}").exists():
        if time.time() > deadline:
            raise RuntimeError("the other stage never started: not run in parallel")
        time.sleep(0.02)
    if os.environ.get("STUDY_SLOW") == "1":
        (ctx.scratch / "progress.txt").write_text("half")
        time.sleep(120)
    (ctx.out / "x.txt").write_text(ctx.name)
    (ctx.out / "resumed.txt").write_text(str((ctx.scratch / "progress.txt").exists()))
    _draw(ctx)

def crash(ctx):
    _log(ctx)
    os._exit(3)  # the worker process dies under the stage
'''

STUDY = """
name: par
seed: 5
stages:
  first: {kind: python, params: {function: "fns.py:draw"}}
  left: {kind: python, inputs: {a: first}, params: {function: "fns.py:meet", other: right}}
  right: {kind: python, inputs: {a: first}, params: {function: "fns.py:meet", other: left}}
  last: {kind: python, inputs: {l: left, r: right}, params: {function: "fns.py:draw"}, seed: 9}
"""


def _draws(out: Path) -> dict[str, dict]:
    rec = json.loads((out / "study.json").read_text())
    return {s["name"]: json.loads((out / s["dir"] / "draw.json").read_text()) for s in rec["stages"]}


def test_defaults_fit_the_cores() -> None:
    jobs = default_jobs()
    assert jobs >= 1 and jobs * threads_per_job(jobs) <= max(1, len(os.sched_getaffinity(0)))
    assert threads_per_job(1) == len(os.sched_getaffinity(0))


def test_parallel_stages_overlap_and_match_a_serial_run(tmp_path: Path) -> None:
    par, ser = tmp_path / "par", tmp_path / "ser"
    par.mkdir()
    ser.mkdir()
    plan = {p.stage.name: p for p in run_study(load_study(write_study(par, FNS, STUDY)), par / "out", jobs=2)}
    assert all(p.status == "done" for p in plan.values())
    rec = json.loads((par / "out" / "study.json").read_text())
    assert rec["jobs"] == 2 and rec["threads_per_job"] == threads_per_job(2)
    st = {s["name"]: s for s in rec["stages"]}
    assert st["left"]["parallel_with"] == ["right"] and st["right"]["parallel_with"] == ["left"]
    assert st["first"]["parallel_with"] == [] and st["last"]["parallel_with"] == []
    assert st["left"]["run"]["pid"] != st["right"]["run"]["pid"] != os.getpid()  # two worker processes
    # one at a time, in this process: the same numbers (the pair's barrier is met in sequence
    # because each stage only waits for the *other's* start marker, written by the first one)
    (ser / "started_right").write_text("pre")  # lets `left` pass its barrier when run alone first
    run_study(load_study(write_study(ser, FNS, STUDY)), ser / "out", jobs=1)
    a, b = _draws(par / "out"), _draws(ser / "out")
    for name in a:
        assert {k: v for k, v in a[name].items() if k != "threads"} == {
            k: v for k, v in b[name].items() if k != "threads"
        }
    assert a["left"]["threads"] == threads_per_job(2)
    assert a["first"]["seed"] == 5 and a["last"]["seed"] == 9
    assert logged_calls(par, sort=True) == ["first", "last", "left", "right"]
    # a cached re-run with workers requested does nothing
    again = run_study(load_study(write_study(par, FNS, STUDY)), par / "out", jobs=2)
    assert all(p.status == "cached" for p in again) and logged_calls(par, sort=True) == [
        "first",
        "last",
        "left",
        "right",
    ]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def test_sigkill_while_two_stages_run_then_resume(tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, STUDY)
    out = tmp_path / "out"
    proc = start_study_process(f, out, jobs=2)
    try:
        wait_for_files(
            proc, [tmp_path / "started_left", tmp_path / "started_right"], 90, "the two stages never ran together"
        )
        time.sleep(0.3)  # both are inside their sleep, scratch written
        workers = [int((tmp_path / f"started_{n}").read_text()) for n in ("left", "right")]
        assert len(set(workers)) == 2 and proc.pid not in workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    deadline = time.time() + 15  # the workers die with the study process: no orphan finishes a stage
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
    assert logged_calls(tmp_path, sort=True) == ["first", "left", "right"]
    stages = out / "stages"
    assert sorted(p.name.split("-")[0] for p in stages.iterdir() if not p.name.startswith(".")) == ["first"]
    assert sum(p.name.startswith((".left", ".right")) for p in stages.iterdir()) == 2  # hidden partials only
    assert json.loads((out / "study.json").read_text())["status"] == "running"

    for n in ("left", "right"):
        (tmp_path / f"started_{n}").unlink()
    (tmp_path / "started_right").write_text("resume")  # the resume runs one at a time: pass the barrier
    plan = {p.stage.name: p for p in run_study(load_study(f), out, jobs=1)}
    # first not redone; the two killed stages ran once more each; last once; nothing duplicated
    assert logged_calls(tmp_path, sort=True) == ["first", "last", "left", "left", "right", "right"]
    assert plan["first"].status == "cached" and {plan[n].status for n in ("left", "right", "last")} == {"done"}
    assert sorted(p.name.split("-")[0] for p in stages.iterdir()) == ["first", "last", "left", "right"]
    for n in ("left", "right"):
        assert (plan[n].dir / "resumed.txt").read_text() == "True"  # scratch survived the kill
    assert json.loads((out / "study.json").read_text())["status"] == "complete"
    assert not (out / "scratch").exists()


def test_a_dead_worker_fails_its_stage_in_one_line(tmp_path: Path) -> None:
    import pytest

    from safeadapt.study.engine import StageFailed
    from safeadapt.study.scheduler import BROKEN

    (tmp_path / "fns.py").write_text(FNS)
    f = tmp_path / "study.yaml"
    f.write_text(textwrap.dedent("""
        name: crash
        stages:
          one: {kind: python, params: {function: "fns.py:draw"}}
          dies: {kind: python, inputs: {a: one}, params: {function: "fns.py:crash"}}
          after: {kind: python, inputs: {a: dies}, params: {function: "fns.py:draw"}}
          other: {kind: python, inputs: {a: one}, params: {function: "fns.py:draw"}, seed: 2}
    """))
    with pytest.raises(StageFailed, match="stage 'dies'"):
        run_study(load_study(f), tmp_path / "out", jobs=2, keep_going=True)
    rec = {s["name"]: s for s in json.loads((tmp_path / "out" / "study.json").read_text())["stages"]}
    assert rec["one"]["status"] == "done" and rec["dies"]["status"] == "failed" and rec["dies"]["error"] == BROKEN
    assert rec["after"]["status"] == "blocked"
    assert rec["other"]["status"] in ("done", "failed")  # collateral when it shared the broken pool


def test_priority_is_the_longest_expected_path() -> None:
    """HLFET order: a search (long, nothing downstream) outranks a merge whose only child is a short
    eval, although the merge has more stages below it; a train stage feeding them outranks both."""
    from types import SimpleNamespace as NS

    from safeadapt.study.scheduler import KIND_COST, Scheduler, expected_cost

    def st(name: str, kind: str, ups: list[str]) -> NS:
        return NS(stage=NS(name=name, kind=kind, upstream=ups), status="to-run")

    plan = [st("sft", "sft", []), st("merge", "merge", ["sft"]), st("eval:merge", "world.eval", ["merge"]),
            st("search", "search", ["sft"]), st("odd", "no-such-kind", [])]
    s = Scheduler(plan=plan, jobs=2, keep_going=False, run=None, args=None, on_start=None, on_finish=None, on_skip=None)
    prio = s._priority()
    assert prio["search"][0] == -KIND_COST["search"] == -45.0
    assert prio["merge"][0] == -(KIND_COST["merge"] + KIND_COST["world.eval"]) == -4.5
    assert prio["sft"][0] == -(KIND_COST["sft"] + KIND_COST["search"])
    assert sorted(prio, key=prio.get) == ["sft", "search", "merge", "eval:merge", "odd"]
    assert expected_cost("no-such-kind") == 1.0


WIDE = """
name: wide
seed: 1
vars: {t: 2}
stages:
  first: {kind: python, params: {function: "fns.py:draw"}}
  wide: {kind: python, threads: "${t}", inputs: {a: first}, params: {function: "fns.py:draw"}}
  left: {kind: python, inputs: {a: first}, params: {function: "fns.py:meet", other: right}}
  right: {kind: python, inputs: {a: first}, params: {function: "fns.py:meet", other: left}}
  after: {kind: python, inputs: {w: wide}, params: {function: "fns.py:draw"}}
"""


def test_a_stage_declared_with_more_threads_takes_the_cores_to_itself(tmp_path: Path) -> None:
    """`threads: 2` with 2 workers: the stage runs alone (two slots) with 2 torch threads and its
    ctx says so, whatever --jobs is (same numbers with --jobs 1); the stage after it is back to
    cores // jobs; the pair with a barrier still runs together; the declared count enters the key."""
    from safeadapt.study.engine import plan_study
    from safeadapt.study.scheduler import available_cores

    want = min(2, available_cores())
    runs = {}
    for jobs in (2, 1):
        root = tmp_path / f"j{jobs}"
        root.mkdir()
        if jobs == 1:
            (root / "started_right").write_text("pre")  # one at a time: `left` passes its barrier first
        run_study(load_study(write_study(root, FNS, WIDE)), root / "out", jobs=jobs)
        runs[jobs] = _draws(root / "out")
        rec = {s["name"]: s for s in json.loads((root / "out" / "study.json").read_text())["stages"]}
        assert rec["wide"]["threads"] == 2 and "threads" not in rec["left"]
        if jobs == 2:
            assert rec["wide"]["parallel_with"] == [] and "right" in rec["left"]["parallel_with"]
    for jobs, d in runs.items():
        assert d["wide"]["threads"] == d["wide"]["ctx_threads"] == want, jobs
        assert d["first"]["ctx_threads"] is None and d["after"]["ctx_threads"] is None
    assert runs[2]["after"]["threads"] == threads_per_job(2)
    assert {k: v for k, v in runs[2]["wide"].items()} == {k: v for k, v in runs[1]["wide"].items()}
    keys = {
        t: {
            p.stage.name: p.key
            for p in plan_study(load_study(tmp_path / "j2" / "study.yaml", overrides={"t": t}), tmp_path / "k")
        }
        for t in (2, 1)
    }
    assert keys[2]["wide"] != keys[1]["wide"] and keys[2]["first"] == keys[1]["first"]


def test_slots_of_a_stage() -> None:
    from types import SimpleNamespace as NS

    from safeadapt.study.scheduler import available_cores, stage_slots, stage_threads

    cores = available_cores()
    assert stage_slots(NS(threads=None), 1, 2) == 1 and stage_threads(NS(threads=None), 1) == 1
    assert stage_threads(NS(threads=64), 1) == cores
    assert stage_slots(NS(threads=2), 1, 2) == min(2, cores)
    assert stage_slots(NS(threads=2), 2, 1) == 1  # one worker: it is all there is
    assert stage_slots(NS(threads=64), 1, 2) == min(2, cores)  # never more than the workers


BIG = """
name: big
seed: 1
stages:
  first: {kind: python, params: {function: "fns.py:draw"}}
  big: {kind: python, memory_gb: 3, inputs: {a: first}, params: {function: "fns.py:draw"}}
  huge: {kind: python, memory_gb: 10, inputs: {a: first}, params: {function: "fns.py:draw"}}
  left: {kind: python, inputs: {a: first}, params: {function: "fns.py:meet", other: right}}
  right: {kind: python, inputs: {a: first}, params: {function: "fns.py:meet", other: left}}
"""


def test_stages_declared_with_more_memory_run_without_company(tmp_path: Path, monkeypatch) -> None:
    """A 4 GiB budget and 1.5 GiB a stage by default: `big` (memory_gb 3) never shares it, `huge`
    (10, above the budget) still runs, alone; the two undeclared stages with a barrier run together.
    memory_gb is recorded in study.json and does not enter the cache key."""
    from safeadapt.study.engine import plan_study

    monkeypatch.setenv("SAFEADAPT_MEMORY_GB", "4")
    monkeypatch.setenv("SAFEADAPT_JOB_MEMORY_GB", "1.5")
    plan = run_study(load_study(write_study(tmp_path, FNS, BIG)), tmp_path / "out", jobs=2)
    assert {p.status for p in plan} == {"done"}
    rec = {s["name"]: s for s in json.loads((tmp_path / "out" / "study.json").read_text())["stages"]}
    assert rec["big"]["parallel_with"] == [] and rec["huge"]["parallel_with"] == []
    assert "right" in rec["left"]["parallel_with"]
    assert rec["big"]["memory_gb"] == 3.0 and "memory_gb" not in rec["left"]
    plain = load_study(write_study(tmp_path, FNS, BIG.replace("memory_gb: 3, ", "").replace("memory_gb: 10, ", "")))
    assert [p.key for p in plan_study(plain, tmp_path / "k")] == [p.key for p in plan]
