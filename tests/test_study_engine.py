"""Study engine: matrix expansion, caching, cache-key sensitivity, failures, scratch reuse, the
study.json record, and resume after a real SIGKILL of a running study."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _study_files import logged_calls, start_study_process, wait_for_files, write_study  # noqa: E402

from safeadapt.core.errors import SafeAdaptError  # noqa: E402
from safeadapt.study.engine import StageFailed, plan_study, run_study  # noqa: E402
from safeadapt.study.schema import load_study  # noqa: E402

FNS = '''
import json, os, time
from pathlib import Path

def _count(ctx):
    with open(Path(ctx.study_dir).parent / "calls.txt", "a") as f:
        f.write(ctx.name + "\\n")

def make(ctx):
    _count(ctx)
    (ctx.out / "x.txt").write_text(str(ctx.params.get("v", 1)))

def add(ctx):
    _count(ctx)
    a = int((ctx.input("a") / "x.txt").read_text())
    (ctx.out / "x.txt").write_text(str(a + ctx.params["w"]))

def total(ctx):
    _count(ctx)
    xs = {k: int((p / "x.txt").read_text()) for k, p in ctx.inputs_with_prefix("xs").items()}
    (ctx.out / "total.json").write_text(json.dumps(xs, sort_keys=True))

def seeded(ctx):
    import random
    _count(ctx)
    (ctx.out / "seed.txt").write_text(str(ctx.seed))
    (ctx.out / "draw.txt").write_text(str(random.random()))

def boom(ctx):
    _count(ctx)
    (ctx.out / "half.txt").write_text("partial")
    raise RuntimeError("disk on fire")

def ctrl_c(ctx):
    (ctx.scratch / "partial").write_text("x")
    raise KeyboardInterrupt

def resumable(ctx):
    """Does 3 units of work, checkpointing each in ctx.scratch; fails once after unit 2."""
    _count(ctx)
    done = sorted(p.name for p in ctx.scratch.glob("unit*"))
    for i in range(3):
        if f"unit{i}" in done:
            continue
        (ctx.scratch / f"unit{i}").write_text("x")
        with open(Path(ctx.study_dir).parent / "units.txt", "a") as f:
            f.write(f"{i}\\n")
        if i == 1 and not (Path(ctx.study_dir).parent / "allow").exists():
            raise RuntimeError("killed mid-way")
    (ctx.out / "done.txt").write_text("ok")

def slow(ctx):
    _count(ctx)
    (ctx.scratch / "progress.txt").write_text("half")
    (Path(ctx.study_dir).parent / "stage2_started").write_text("1")
    if os.environ.get("STUDY_SLOW") == "1":
        time.sleep(60)
    (ctx.out / "x.txt").write_text("slow-done")
    (ctx.out / "resumed.txt").write_text(str((ctx.scratch / "progress.txt").exists()))
'''


GRID = """
name: grid
seed: 3
vars: {base: 2}
stages:
  one: {kind: python, params: {function: "fns.py:make", v: "${base}"}}
  add:
    kind: python
    inputs: {a: one}
    params: {function: "fns.py:add", w: "${w}"}
    matrix: {w: [1, 10]}
  "pair:${m}-${w}":
    kind: python
    inputs: {a: "add:${w}"}
    params: {function: "fns.py:add", w: "${w}"}
    matrix: [{m: p, w: 1}, {m: q, w: 10}]
  sum: {kind: python, inputs: {xs: "add:*"}, params: {function: "fns.py:total"}}
"""


def test_matrix_expansion_order_and_typed_substitution(tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path, FNS, GRID))
    names = [s.name for s in study.stages]
    assert names == ["one", "add:1", "add:10", "pair:p-1", "pair:q-10", "sum"]
    assert study.stage("one").params["v"] == 2  # `${base}` alone keeps the int type
    assert study.stage("add:10").params["w"] == 10
    assert study.stage("pair:q-10").inputs["a"].stage == "add:10"
    assert sorted(study.stage("sum").inputs) == ["xs[add:10]", "xs[add:1]"]
    assert study.stage("add:1").matrix_values == {"w": 1}
    assert all(s.seed == 3 for s in study.stages)


def test_run_caches_and_skips(tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, GRID)
    out = tmp_path / "out"
    plan = run_study(load_study(f), out)
    assert [p.status for p in plan] == ["done"] * 6
    assert sorted(logged_calls(tmp_path)) == sorted(["one", "add:1", "add:10", "pair:p-1", "pair:q-10", "sum"])
    by = {p.stage.name: p for p in plan}
    assert (by["add:10"].dir / "x.txt").read_text() == "12"
    assert (by["pair:q-10"].dir / "x.txt").read_text() == "22"
    assert json.loads((by["sum"].dir / "total.json").read_text()) == {"add:1": 3, "add:10": 12}
    assert by["add:1"].dir.name == f"add_1-{by['add:1'].key[:12]}"
    marker = json.loads((by["add:1"].dir / "_stage.json").read_text())
    assert marker["key"] == by["add:1"].key
    assert marker["inputs"]["a"]["key"] == by["one"].key
    assert marker["provenance"]["versions"]["safeadapt"]
    assert "run" in marker["provenance"]["timings_s"]
    record = json.loads((out / "study.json").read_text())
    assert record["status"] == "complete" and [s["status"] for s in record["stages"]] == ["done"] * 6
    assert not (out / "scratch").exists()  # scratch removed after success

    # second run: everything cached, nothing called
    plan2 = run_study(load_study(f), out)
    assert [p.status for p in plan2] == ["cached"] * 6
    assert len(logged_calls(tmp_path)) == 6
    assert [p.key for p in plan2] == [p.key for p in plan]


def test_cache_key_tracks_params_seed_and_upstream(tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, GRID)
    out = tmp_path / "out"
    base = {p.stage.name: p.key for p in plan_study(load_study(f), out)}
    run_study(load_study(f), out)
    # an upstream variable change re-keys the upstream and everything downstream of it
    changed = {p.stage.name: p for p in plan_study(load_study(f, overrides={"base": 5}), out)}
    assert all(changed[n].key != base[n] for n in base)
    assert all(p.status == "to-run" for p in changed.values())
    # a seed change re-keys all stages; same inputs give the same keys (deterministic)
    seeded = {p.stage.name: p.key for p in plan_study(load_study(f, seed=4), out)}
    assert all(seeded[n] != base[n] for n in base)
    again = {p.stage.name: p.key for p in plan_study(load_study(f), out)}
    assert again == base
    # re-run with base=5: only re-keyed stages run, results follow the new value
    n0 = len(logged_calls(tmp_path))
    plan = {p.stage.name: p for p in run_study(load_study(f, overrides={"base": 5}), out)}
    assert len(logged_calls(tmp_path)) == n0 + 6
    assert (plan["add:10"].dir / "x.txt").read_text() == "15"


def test_only_runs_a_stage_and_its_inputs(tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, GRID)
    plan = run_study(load_study(f), tmp_path / "out", only=["pair:p-*"])
    assert [p.stage.name for p in plan] == ["one", "add:1", "pair:p-1"]
    with pytest.raises(SafeAdaptError, match="matches no stage"):
        run_study(load_study(f), tmp_path / "out", only=["nope"])


def test_path_inputs_are_fingerprinted(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("7")
    f = write_study(
        tmp_path,
        FNS,
        """
        name: p
        stages:
          add: {kind: python, inputs: {a: {path: .}}, params: {function: "fns.py:make"}}
        """,
    )
    (tmp_path / "x.txt").write_text("1")
    k1 = plan_study(load_study(f), tmp_path / "out")[0].key
    (tmp_path / "x.txt").write_text("2")
    k2 = plan_study(load_study(f), tmp_path / "out")[0].key
    assert k1 != k2


def test_failure_is_one_line_records_status_and_blocks_downstream(tmp_path: Path) -> None:
    f = write_study(
        tmp_path,
        FNS,
        """
        name: fail
        stages:
          ok: {kind: python, params: {function: "fns.py:make"}}
          bad: {kind: python, inputs: {a: ok}, params: {function: "fns.py:boom"}}
          after: {kind: python, inputs: {a: bad}, params: {function: "fns.py:add", w: 1}}
          other: {kind: python, params: {function: "fns.py:seeded"}}
        """,
    )
    out = tmp_path / "out"
    with pytest.raises(StageFailed) as ei:
        run_study(load_study(f), out)
    msg = ei.value.one_line()
    assert "'bad'" in msg and "RuntimeError: disk on fire" in msg and "traceback:" in msg
    log = Path(msg.split("traceback: ")[1].rstrip(")"))
    assert "disk on fire" in log.read_text()
    record = json.loads((out / "study.json").read_text())
    assert record["status"] == "failed"
    assert {s["name"]: s["status"] for s in record["stages"]} == {
        "ok": "done",
        "bad": "failed",
        "after": "blocked",
        "other": "skipped",
    }
    # nothing complete-looking was left for the failed stage
    assert not list((out / "stages").glob("bad-*")) and not list((out / "stages").glob(".bad*"))
    # keep_going runs the independent stage
    with pytest.raises(StageFailed):
        run_study(load_study(f), out, keep_going=True)
    record = json.loads((out / "study.json").read_text())
    assert {s["name"]: s["status"] for s in record["stages"]}["other"] == "done"


def test_scratch_survives_failure_and_is_reused(tmp_path: Path) -> None:
    f = write_study(
        tmp_path,
        FNS,
        """
        name: scratch
        stages:
          work: {kind: python, params: {function: "fns.py:resumable"}}
        """,
    )
    out = tmp_path / "out"
    with pytest.raises(StageFailed, match="killed mid-way"):
        run_study(load_study(f), out)
    scratch = next((out / "scratch").iterdir())
    assert sorted(p.name for p in scratch.iterdir()) == ["unit0", "unit1"]
    (tmp_path / "allow").write_text("1")
    run_study(load_study(f), out)
    # units 0 and 1 were not redone: each unit ran exactly once overall
    assert (tmp_path / "units.txt").read_text().split() == ["0", "1", "2"]
    assert not scratch.exists()


def test_resume_after_sigkill(tmp_path: Path) -> None:
    f = write_study(
        tmp_path,
        FNS,
        """
        name: killme
        stages:
          first: {kind: python, params: {function: "fns.py:make", v: 4}}
          second: {kind: python, inputs: {a: first}, params: {function: "fns.py:slow"}}
          third: {kind: python, inputs: {a: second}, params: {function: "fns.py:seeded"}}
        """,
    )
    out = tmp_path / "out"
    proc = start_study_process(f, out)
    try:
        wait_for_files(proc, [tmp_path / "stage2_started"], 60, "stage 2 never started")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert logged_calls(tmp_path) == ["first", "second"]
    # the killed stage left no complete-looking output, only a hidden partial dir + its scratch
    stages = out / "stages"
    assert [p.name.split("-")[0] for p in stages.iterdir() if not p.name.startswith(".")] == ["first"]
    assert any(p.name.startswith(".second") for p in stages.iterdir())
    assert json.loads((out / "study.json").read_text())["status"] == "running"

    os.environ.pop("STUDY_SLOW", None)
    plan = {p.stage.name: p for p in run_study(load_study(f), out)}
    assert logged_calls(tmp_path) == ["first", "second", "second", "third"]  # first not recomputed
    assert plan["first"].status == "cached" and plan["second"].status == "done"
    assert (plan["second"].dir / "x.txt").read_text() == "slow-done"
    assert (plan["second"].dir / "resumed.txt").read_text() == "True"  # scratch survived the kill
    assert (plan["third"].dir / "seed.txt").read_text() == "0"
    import random

    random.seed(0)  # the engine seeds `random` with the stage seed before each stage
    assert (plan["third"].dir / "draw.txt").read_text() == str(random.random())
    assert not any(p.name.startswith(".") for p in stages.iterdir())  # partials cleaned
    assert json.loads((out / "study.json").read_text())["status"] == "complete"


def test_concurrent_run_is_refused(tmp_path: Path) -> None:
    import fcntl

    f = write_study(tmp_path, FNS, GRID)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".study.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SafeAdaptError, match="another safeadapt run"):
            run_study(load_study(f), out)


def test_ctrl_c_marks_interrupted_and_leaves_no_output(tmp_path: Path) -> None:
    f = write_study(
        tmp_path,
        FNS,
        """
        name: ctrlc
        stages:
          ok: {kind: python, params: {function: "fns.py:make"}}
          stop: {kind: python, inputs: {a: ok}, params: {function: "fns.py:ctrl_c"}}
        """,
    )
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_study(load_study(f), out)
    rec = json.loads((out / "study.json").read_text())
    assert rec["status"] == "interrupted"
    assert [s["status"] for s in rec["stages"]] == ["done", "interrupted"]
    assert [p.name.split("-")[0] for p in (out / "stages").iterdir()] == ["ok"]  # temp dir removed
    assert (next((out / "scratch").iterdir()) / "partial").exists()  # scratch kept for the resume
