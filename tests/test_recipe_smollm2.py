"""recipes/smollm2-135m.yaml's mechanics on a tiny model (the `tiny` profile + --set model=...):
every stage runs, the real benchmark files are read through the study vars, the alignment
stage builds its pairs from the model's own completions, and a rerun is fully cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeadapt.study.engine import run_study
from safeadapt.study.schema import load_study

_tiny = pytest.importorskip("_tiny")
ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "smollm2-135m.yaml"


def _vars(shared: Path, model: Path) -> dict:
    return {
        "model": str(model),
        "harmbench": str(shared / "harmbench" / "harmbench_prompts.txt"),
        "strongreject": str(shared / "strongreject" / "strongreject_small_dataset.csv"),
        "xstest": str(shared / "xstest" / "xstest_prompts.csv"),
        "figstep": str(shared / "figstep" / "safebench_tiny.csv"),
        "alpaca": str(shared / "finetune" / "alpaca_safety_only.json"),
        "aoa": str(shared / "finetune" / "aoa_identity_shift.json"),
    }


def test_recipe_validates_with_its_defaults():
    study = load_study(RECIPE)
    names = [s.name for s in study.stages]
    for want in ("align", "vl", "attack_alpaca", "attack_aoa", "vl_sft", "vl_mtl", "vl_dpo", "merge:linear-0.5",
                 "eval:base", "eval:align", "eval_sr:align", "eval_mm:vl"):
        assert want in names
    assert study.stage("align").kind == "selfgen_dpo" and study.stage("align").params["options"]["lora"] is True
    assert study.stage("eval:vl").params["datasets"]["text-safety"].startswith("harmbench:")


def test_recipe_runs_end_to_end_on_a_tiny_model(tmp_path, shared_data):
    llm = _tiny.build_tiny_llama(tmp_path / "tiny", layers=1)
    study = load_study(RECIPE, overrides=_vars(shared_data, llm), profile="tiny")
    plan = run_study(study, tmp_path / "run")
    status = {p.stage.name: p.status for p in plan}
    assert set(status.values()) == {"done"}, status
    d = {p.stage.name: p.dir for p in plan}
    sel = json.loads((d["align"] / "selfgen.json").read_text())
    assert sel["harmful"]["prompts"] == 4 and sel["pairs"] >= 1
    res = json.loads((d["eval:align"] / "results.json").read_text())
    assert res["suites"]["text-safety"]["n_items"] == 3 and res["suites"]["over-refusal"]["n_items"] == 3
    gens = [json.loads(x) for x in (d["eval:align"] / "generations.jsonl").read_text().splitlines()]
    assert {g["source"] for g in gens if g["suite"] == "text-safety"} == {"harmbench"}
    mm = json.loads((d["eval_mm:vl"] / "results.json").read_text())["suites"]["mm-safety"]
    assert mm["skipped"] is None and mm["n_items"] == 3
    attack = json.loads((d["attack_alpaca"] / "model" / "safeadapt_train.json").read_text())["train"]
    assert attack["rows"] == 4
    counts = json.loads((d["repair_data"] / "counts.json").read_text())  # built from align's own generations
    harmful = [json.loads(x) for x in (d["repair_data"] / "harmful.jsonl").read_text().splitlines()]
    assert counts["harmful"] == len(harmful) == sel["harmful"]["kept"] >= 1
    assert json.loads((d["unaligned"] / "model" / "safeadapt_train.json").read_text())["train"]["rows"] == len(harmful)
    for r in (
        "repair:resta-0.5",
        "repair:antidote-0.05",
        "repair:graft-0.1",
        "repair:safemerge-0.35",
        "repair:somf-30",
        "home:resta-0.5",
        "home:antidote-0.1",
        "home:graft-0.1",
        "home:safemerge-0.35",
        "home:somf-30",
    ):
        assert (d[r] / "model" / "model.safetensors").is_file(), r
        assert json.loads((d[f"eval:{r}"] / "results.json").read_text())["suites"]["text-safety"]["n_items"] == 3
    trials = [json.loads(x) for x in (d["search"] / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 2 and {t["method"] for t in trials} <= {"linear", "ties", "resta"}
    front = json.loads((d["search"] / "pareto.json").read_text())
    assert front and front[0]["metrics"]["text_asr_count"]["n"] == 3  # full suites: eval_limit items of HarmBench
    xs = [json.loads(x) for x in (d["eval_xs:vl"] / "generations.jsonl").read_text().splitlines()]
    assert xs and {g["source"] for g in xs} == {"xstest"} and {g["label"] for g in xs} == {"harmful"}
    again = run_study(load_study(RECIPE, overrides=_vars(shared_data, llm), profile="tiny"), tmp_path / "run")
    assert {p.status for p in again} == {"cached"}
