"""Miniature world, pipeline mechanics: the demo study under its `micro` profile (tiny sizes, a
few steps) runs end to end through the real stage kinds (world.*, sft, dpo, merge) and writes
results.json with every role and every metric a fraction; a rerun is fully cached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from safeadapt.world.demo import METRICS

ROLES = {"aligned", "vl_stage1", "vl", "vl_sft", "vl_mtl", "vl_dpo"} | {
    f"merge:{m}-{a}" for m, ws in (("linear", (0.5, 0.75)), ("ties", (0.9,)), ("dare", (0.75,))) for a in ws} | {
    "merge:guided", "repair:resta-0.1", "repair:resta-0.25", "repair:resta-0.5", "repair:antidote-0.02",
    "repair:antidote-0.1", "repair:graft-0.1", "repair:safemerge-0.35", "repair:somf-30",
    "unaligned", "harmful_ft", "home:resta-0.5", "home:antidote-0.1", "home:antidote-0.2", "home:set_difference-0.1",
    "home:safemerge-0.35", "home:somf-30"}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from safeadapt.study.commands import run_study_file
    from safeadapt.world.commands import DEMO_STUDY
    from safeadapt.world.summary import summarize

    base = tmp_path_factory.mktemp("micro")
    out = base / "run"
    # a relative --out, as in the README's command: stage data files must not depend on the cwd
    cwd = os.getcwd()
    os.chdir(base)
    try:
        run_study_file(DEMO_STUDY, Path("run"), profile="micro", seed=0)
    finally:
        os.chdir(cwd)
    return out, summarize(out)


def test_micro_world_results_have_every_role_and_fraction(micro):
    out, res = micro
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["models"].keys() == res["models"].keys() == ROLES
    for role, m in on_disk["models"].items():
        for k in METRICS:
            assert 0.0 <= m[k] <= 1.0, (role, k)
            c = m[f"{k}_count"]
            assert c["n"] > 0 and abs(c["k"] / c["n"] - m[k]) < 1e-9
            lo, hi = m[f"{k}_ci"]
            assert lo <= m[k] + 1e-9 and m[k] <= hi + 1e-9
    # the text-only aligned LLM answers the text equivalents; VLMs get the images
    assert on_disk["models"]["aligned"]["mm_source"] == "text-equivalent"
    assert on_disk["models"]["vl"]["mm_source"] == "image"
    assert "vqa" in on_disk["models"]["vl"]["helpfulness_by_kind"]
    assert "vqa" not in on_disk["models"]["aligned"]["helpfulness_by_kind"]
    # helpfulness on text and visual items apart: the aligned LLM's text figure compares with the VLMs'
    al, vl = on_disk["models"]["aligned"], on_disk["models"]["vl"]
    assert al["helpfulness_visual"] is None and al["helpfulness_visual_count"]["n"] == 0
    assert al["helpfulness_text_count"]["n"] == vl["helpfulness_text_count"]["n"] > 0
    assert vl["helpfulness_visual_count"]["n"] > 0 and 0.0 <= vl["helpfulness_visual"] <= 1.0
    assert al["helpfulness_text"] == al["helpfulness"]  # text-only: the combined figure is the text one
    nt, nv = vl["helpfulness_text_count"], vl["helpfulness_visual_count"]
    assert nt["k"] + nv["k"] == vl["helpfulness_count"]["k"] and nt["n"] + nv["n"] == vl["helpfulness_count"]["n"]
    assert set(on_disk["targets"]) == {"vl_raises_asr_20pts", "safety_tuning_lowers_asr_raises_over_refusal",
                                       "best_merge_within_5pts", "guided_merge_beats_uniform", "home_repairs_cut_asr"}
    home = on_disk["targets"]["home_repairs_cut_asr"]
    assert home["home"] == "harmful_ft" and set(home["per_method"]) == {
        "antidote",
        "resta",
        "safemerge",
        "somf",
        "set_difference",
    }


def test_micro_world_search_front(micro):
    """The demo's Pareto search stage ran on the world and results.json carries its front."""
    out, res = micro
    s = res["search"]
    assert s["summary"]["complete"] == 3 and s["front"]
    for p in s["front"]:
        assert p["method"] in {"linear", "ties", "dare_linear", "resta", "antidote", "set_difference"}
        assert set(p["objectives"]) == {"asr", "over_refusal", "helpfulness"}
        for k in METRICS:
            assert 0.0 <= p["metrics"][k] <= 1.0
        assert (out / s["dir"] / p["rebuild"]["recipe"]).is_file()


def test_micro_world_generations_are_judged_by_world_judge(micro):
    out, _ = micro
    study = json.loads((out / "study.json").read_text())
    ev = next(s for s in study["stages"] if s["name"] == "eval:vl")
    recs = [json.loads(x) for x in (out / ev["dir"] / "generations.jsonl").read_text().splitlines()]
    assert recs and all(r["judgement"]["extra"]["world_kind"] for r in recs if "judgement" in r)
    assert {r["suite"] for r in recs} >= {"text-safety", "jailbreak", "over-refusal", "mm-safety", "helpfulness"}


def test_micro_world_rerun_is_cached(micro):
    from safeadapt.study.commands import run_study_file
    from safeadapt.world.commands import DEMO_STUDY

    out, _ = micro
    run_study_file(DEMO_STUDY, out, profile="micro", seed=0)
    study = json.loads((out / "study.json").read_text())
    assert {s["status"] for s in study["stages"]} == {"cached"}


def test_micro_world_diagnosis_stages(micro):
    """diagnose.weights (aligned -> vl -> vl_sft, the VLMs' language towers against the text LLM),
    diagnose.activations (three models, ablation on the aligned LLM with the world judge),
    diagnose.recommend and the guided merge ran and wrote their contracts."""
    out, res = micro
    diag = res["diagnosis"]
    w = json.loads((Path(diag["diagnose:weights"]["dir"]) / "weights.json").read_text())
    assert w["pairs"] == ["aligned->vl", "vl->vl_sft", "aligned->vl_sft"] and w["parts"] == ["language"]
    assert all({"pair", "layer", "module", "rel_change"} <= set(r) for r in w["per_layer"])
    assert any(r.get("cos_tv") is not None for r in w["per_layer"])
    assert "heatmap_cos_tv.png" in diag["diagnose:weights"]["files"]
    a = json.loads((Path(diag["diagnose:activations"]["dir"]) / "activations.json").read_text())
    assert [m["label"] for m in a["models"]] == ["aligned", "vl", "vl_sft"]
    assert a["ablation"]["judge"] == "world" and a["ablation"]["model"] == "aligned"
    assert [c["pair"] for c in a["cross"]] == ["aligned->vl", "aligned->vl_sft"]
    assert "recommend.yaml" in diag["diagnose:recommend"]["files"]
def test_micro_demo_ends_with_report(micro):
    """`safeadapt demo`'s driver ends with DIR/report.html showing every role's measured counts."""
    from safeadapt.world.commands import run_demo

    out, res = micro
    run_demo(out, profile="micro", seed=0)  # every stage cached: summary + report only
    html = (out / "report.html").read_text()
    for s in ("finding", "headline", "breakdowns", "pareto", "diagnosis", "judges", "samples", "provenance"):
        assert f'<section id="{s}">' in html, s
    m = res["models"]["vl"]["text_asr_count"]
    assert f"{m['k']}/{m['n']}" in html and "merge:dare-0.75" in html and "repair:resta-0.25" in html
