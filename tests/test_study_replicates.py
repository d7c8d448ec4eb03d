"""Replication over seeds: the across-seed statistics (t interval, Wilson floor), a study with
`seeds:` sharing its seed-independent stages and reusing a one-seed run's outputs, the generic
results.json, and the demo's per-seed / overall directions on planted numbers."""

from __future__ import annotations

import json
import math
import random
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _study_files import logged_calls, write_study  # noqa: E402

from safeadapt.core.errors import SafeAdaptError  # noqa: E402
from safeadapt.study.engine import run_study  # noqa: E402
from safeadapt.study.replicates import across, parse_seeds, t_quantile, wilson, write_results  # noqa: E402
from safeadapt.study.schema import load_study  # noqa: E402


def test_across_seed_interval_t_and_wilson_floor() -> None:
    a = across([0.1, 0.2, 0.3])
    assert a["mean"] == pytest.approx(0.2) and a["sd"] == pytest.approx(0.1)
    half = 4.303 * 0.1 / math.sqrt(3)
    assert a["ci95"] == pytest.approx([0.2 - half, 0.2 + half])
    # fractions with counts: identical values on every seed still get a non-zero width (pooled Wilson)
    z = across([0.0, 0.0, 0.0], [{"k": 0, "n": 100}] * 3)
    assert z["ci95"][0] == 0.0 and z["ci95"][1] == pytest.approx(1.959964**2 / (300 + 1.959964**2))
    assert wilson(0, 300)[1] == pytest.approx(z["ci95"][1])
    w = across([0.5, 0.52], [{"k": 50, "n": 100}, {"k": 52, "n": 100}])
    assert 0.0 <= w["ci95"][0] < 0.5 < 0.52 < w["ci95"][1] <= 1.0
    assert across([0.4])["ci95"] is None  # one seed: no across-seed interval
    assert t_quantile(2) == 4.303 and t_quantile(40) == pytest.approx(2.021, abs=2e-3)
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    with pytest.raises(SafeAdaptError, match="distinct"):
        parse_seeds([1, 1])
    with pytest.raises(SafeAdaptError, match="integers"):
        parse_seeds("0,x")


FNS = '''
import json, random
from pathlib import Path

def _log(ctx):
    with open(Path(ctx.study_dir).parent / "calls.txt", "a") as f:
        f.write(ctx.name + "\\n")

def const(ctx):
    _log(ctx)
    (ctx.out / "x.txt").write_text(str(ctx.params["v"]))

def draw(ctx):
    _log(ctx)
    base = int((ctx.input("f") / "x.txt").read_text())
    (ctx.out / "x.txt").write_text(str(base + random.random()))

def ev(ctx):
    _log(ctx)
    x = float((ctx.input("d") / "x.txt").read_text()) - 7
    k = int(x * 100)
    res = {"suites": {"s": {"asr": {"value": k / 100, "k": k, "n": 100, "ci_low": 0, "ci_high": 1}}}}
    (ctx.out / "results.json").write_text(json.dumps(res))
'''

STUDY = """
name: rep
seeds: [0, 1, 2]
stages:
  fixed: {kind: python, params: {function: "fns.py:const", v: 7}, seed: 11}
  data: {kind: python, inputs: {f: fixed}, params: {function: "fns.py:draw"}}
  "ev:${m}":
    kind: python
    matrix: [{m: a}, {m: b}]
    inputs: {d: data}
    params: {function: "fns.py:ev", m: "${m}"}
  table: {kind: python, inputs: {evs: "ev:*"}, params: {function: "fns.py:const", v: 1}, seed: 3}
"""


def test_seeds_share_what_does_not_depend_on_the_seed(tmp_path: Path) -> None:
    f = write_study(tmp_path, FNS, STUDY)
    out = tmp_path / "out"
    # first a one-seed run (seed 1): the replicated run must reuse its outputs, not redo them
    one = load_study(f, seed=1)
    assert not one.seeds and [s.name for s in one.stages] == ["fixed", "data", "ev:a", "ev:b", "table"]
    run_study(one, out)
    assert logged_calls(tmp_path, sort=True) == ["data", "ev:a", "ev:b", "fixed", "table"]
    study = load_study(f)
    assert study.seeds == [0, 1, 2]
    names = [s.name for s in study.stages]
    assert names.count("fixed") == 1 and "fixed@s0" not in names  # seed pinned, no seeded input: shared
    for sd in (0, 1, 2):
        for base in ("data", "ev:a", "ev:b", "table"):  # table pins its seed but reads per-seed inputs
            assert f"{base}@s{sd}" in names
    ev = study.stage("ev:a@s2")
    assert ev.replicate == 2 and ev.base_name == "ev:a" and ev.inputs["d"].stage == "data@s2"
    assert set(study.stage("table@s0").inputs) == {"evs[ev:a]", "evs[ev:b]"}
    assert {r.stage for r in study.stage("table@s0").inputs.values()} == {"ev:a@s0", "ev:b@s0"}
    plan = {p.stage.name: p for p in run_study(study, out)}
    assert plan["fixed"].status == "cached" and all(
        plan[f"{b}@s1"].status == "cached" for b in ("data", "ev:a", "table")
    )
    assert logged_calls(tmp_path, sort=True) == sorted(["data", "ev:a", "ev:b", "fixed", "table"] +
                                      [f"{b}@s{sd}" for sd in (0, 2) for b in ("data", "ev:a", "ev:b", "table")])
    for sd in (0, 1, 2):
        random.seed(sd)
        assert (plan[f"data@s{sd}"].dir / "x.txt").read_text() == str(7 + random.random())
    rec = json.loads((out / "study.json").read_text())
    assert rec["seeds"] == [0, 1, 2]
    assert {s["name"]: s.get("replicate") for s in rec["stages"]}["ev:b@s2"] == 2
    res = write_results(out)
    assert res is not None and json.loads((out / "results.json").read_text())["seeds"] == [0, 1, 2]
    vals = [res["per_seed"][str(sd)]["ev:a"]["s.asr"] for sd in (0, 1, 2)]
    for sd, v in zip((0, 1, 2), vals):
        random.seed(sd)
        assert v == int(random.random() * 100) / 100
    acc = res["across_seeds"]["ev:a"]["s.asr"]
    assert acc["values"] == vals and acc["mean"] == pytest.approx(sum(vals) / 3) and acc["pooled"]["n"] == 300
    assert set(res["across_seeds"]) == {"ev:a", "ev:b"}  # table has no metrics


def test_seeds_on_the_command_line(tmp_path: Path) -> None:
    import typer

    from safeadapt.study import commands

    f = write_study(tmp_path, FNS, textwrap.dedent(STUDY).replace("seeds: [0, 1, 2]\n", ""))
    app = typer.Typer()
    app.callback()(lambda: None)
    commands.register(app)
    r = CliRunner().invoke(app, ["run", str(f), "--out", str(tmp_path / "o"), "--seeds", "3,4", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["seeds"] == [3, 4] and len(res["across_seeds"]["ev:b"]["s.asr"]["values"]) == 2
    r = CliRunner().invoke(app, ["run", str(f), "--out", str(tmp_path / "o2"), "--seeds", "3,4", "--seed", "1"])
    assert r.exit_code != 0 and "either --seed or --seeds" in r.output


def _world_metrics(text: float, mm: float, orr: float, helpful: float, n: int = 100) -> dict:
    m = {}
    for k, v in (
        ("text_asr", text),
        ("mm_asr", mm),
        ("jailbreak_asr", text),
        ("over_refusal", orr),
        ("helpfulness", helpful),
    ):
        m[k], m[f"{k}_count"], m[f"{k}_ci"] = v, {"k": round(v * n), "n": n}, [0, 1]
    return m


def test_demo_summary_over_seeds_on_planted_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safeadapt.world.summary import summarize

    # seed 2: VL adaptation raises ASR by only 10 points -> direction 1 fails on that seed only
    planted = {
        "aligned": [(0.01, 0.01, 0.0, 0.88)] * 3,
        "vl": [(0.90, 0.50, 0.0, 0.75), (0.80, 0.45, 0.0, 0.76), (0.11, 0.08, 0.0, 0.74)],
        "vl_sft": [(0.0, 0.0, 0.30, 0.70), (0.0, 0.01, 0.35, 0.69), (0.0, 0.0, 0.25, 0.71)],
        "merge:linear-0.75": [(0.02, 0.01, 0.01, 0.78), (0.01, 0.02, 0.0, 0.77), (0.01, 0.0, 0.02, 0.79)],
    }
    stages = []
    for sd in (0, 1, 2):
        for role, rows in planted.items():
            d = tmp_path / "stages" / f"eval_{role.replace(':', '_')}-{sd}"
            d.mkdir(parents=True)
            (d / "world_metrics.json").write_text(
                json.dumps({"role": role, "model_dir": "m", "metrics": _world_metrics(*rows[sd])})
            )
            stages.append(
                {
                    "name": f"eval:{role}@s{sd}",
                    "kind": "world.eval",
                    "replicate": sd,
                    "base_name": f"eval:{role}",
                    "dir": str(d.relative_to(tmp_path)),
                    "status": "done",
                    "seconds": 1.0,
                }
            )
    (tmp_path / "study.json").write_text(json.dumps({"seeds": [0, 1, 2], "stages": stages}))
    res = summarize(tmp_path)
    assert res["seeds"] == [0, 1, 2] and set(res["per_seed"]) == {"0", "1", "2"}
    vl = res["across_seeds"]["vl"]["text_asr"]
    assert vl["values"] == [0.90, 0.80, 0.11] and vl["mean"] == pytest.approx(0.60333, abs=1e-4)
    assert (
        res["models"]["vl"]["text_asr"] == pytest.approx(vl["mean"])
        and res["models"]["vl"]["text_asr_ci"] == vl["ci95"]
    )
    t1 = res["targets"]["vl_raises_asr_20pts"]
    assert t1["holds_per_seed"] == {"0": True, "1": True, "2": False} and not t1["holds_every_seed"]
    assert t1["holds_on_mean"]  # the mean rise is still >= 20 points ...
    assert t1["intervals_separate"] is False  # ... but the intervals overlap with seed 2 in them
    t2 = res["targets"]["safety_tuning_lowers_asr_raises_over_refusal"]
    assert t2["holds_every_seed"] and t2["holds_on_mean"]
    assert res["separation"]["safety_tuning_lowers_asr_raises_over_refusal"]["per_model"]["vl_sft"][
        "over_refusal_above_aligned"
    ]
    t3 = res["targets"]["best_merge_within_5pts"]
    assert t3["holds_every_seed"] and t3["on_mean"]["best"] == "merge:linear-0.75"
    assert json.loads((tmp_path / "results.json").read_text())["targets"] == res["targets"]
    out = capsys.readouterr().out
    assert "s2:NO" in out and "mean [95% interval]" in out
