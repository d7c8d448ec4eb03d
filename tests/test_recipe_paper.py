"""recipes/llava-llama2-paper.yaml dry-runs offline (hub ids validated as names only, nothing
fetched) with the paper's hyper-parameters; a malformed hub id is a one-line error; the
training-data converters (LLaVA, VLGuard, Safe-RLHF, SPA-VL) and the convert-data stage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safeadapt.cli import app
from safeadapt.core.errors import SafeAdaptError
from safeadapt.data.train_formats import get_format
from safeadapt.study.engine import run_study
from safeadapt.study.refs import check_refs, classify
from safeadapt.study.schema import load_study

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "recipes" / "llava-llama2-paper.yaml"


def test_paper_recipe_dry_runs_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps table cells to the terminal width
    r = CliRunner().invoke(app, ["run", str(PAPER), "--out", str(tmp_path / "o"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "meta-llama/Llama-2-7b-chat-hf" in r.output and "hub id" in r.output
    assert not (tmp_path / "o" / "stages").exists()  # nothing ran


def test_paper_recipe_hyper_parameters():
    st = load_study(PAPER)
    vl = st.stage("vl").params
    assert vl["options"]["lr"] == 2e-5 and vl["options"]["mixed_precision"] == "bf16"
    assert vl["options"]["batch_size"] * vl["options"].get("grad_accum", 1) * vl["launch"]["num_processes"] == 64
    dpo = st.stage("vl_dpo").params["options"]
    assert (dpo["lr"], dpo["epochs"], dpo["scheduler"], dpo["warmup_ratio"]) == (5e-7, 3, "linear", 0.1)
    assert dpo["batch_size"] * 8 == 32
    dec = st.stage("eval:vl").params["decoding"]
    assert (dec["temperature"], dec["top_p"], dec["max_new_tokens"]) == (0.1, 1.0, 512)
    assert load_study(PAPER, profile="tulu2").stage("vlm_init").params["model"] == "allenai/tulu-2-7b"
    refs = {r.ref: r.status for r in check_refs(st)}
    assert refs["openai/clip-vit-large-patch14-336"] == "hub id" and refs["hf:sqrti/SPA-VL"] == "hub id"
    assert refs["data/VLGuard/train.json"] == "missing"


def test_bad_hub_id_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = CliRunner().invoke(
        app, ["run", str(PAPER), "--out", str(tmp_path / "o"), "--dry-run", "--set", "llm=meta-llama//Llama 2"]
    )
    assert r.exit_code != 0
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error:") and "is not a valid hub id" in line and "vlm_init" in line


def test_classify(tmp_path):
    (tmp_path / "a.json").write_text("[]")
    assert classify("a.json", tmp_path, model=False) == ("local", None)
    assert classify("data/x.json", tmp_path, model=False) == ("missing", None)
    assert classify("org/name", tmp_path, model=False) == ("hub id", None)
    assert classify("gpt2", tmp_path, model=True) == ("hub id", None)
    assert classify("input:data/x", tmp_path, model=False) == ("input", None)
    assert classify("hf:a//b", tmp_path, model=False)[1] is not None


def test_converters():
    kind, llava = get_format("llava")
    row = llava({"image": "coco/1.jpg", "conversations": [{"from": "human", "value": "What is it?\n<image>"},
                                                           {"from": "gpt", "value": "A cat."}]})[0]
    assert kind == "sft" and row["images"] == ["coco/1.jpg"]
    assert row["messages"] == [
        {"role": "user", "content": "<image>\nWhat is it?"},
        {"role": "assistant", "content": "A cat."},
    ]
    _, vlg = get_format("vlguard")
    rows = vlg({"id": "x", "image": "bad_ads/1.png", "safe": False,
                "instr-resp": [{"instruction": "How to make this?", "response": "I can't help."}]})
    assert rows[0]["messages"][0]["content"] == "<image>\nHow to make this?" and rows[0]["images"] == ["bad_ads/1.png"]
    _, srl = get_format("safe-rlhf")
    assert srl({"prompt": "p", "response_0": "bad", "response_1": "good", "safer_response_id": 1}) == \
        [{"prompt": "p", "chosen": "good", "rejected": "bad"}]
    kind, spa = get_format("spa-vl")
    assert kind == "dpo" and spa({"question": "q", "chosen": "c", "rejected": "r", "image": "i.png"})[0]["images"] == [
        "i.png"
    ]
    with pytest.raises(SafeAdaptError, match="unknown training data format 'alpacaa'"):
        get_format("alpacaa")


def test_convert_data_stage_mixes_sources_and_writes_byte_images(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "img" / "a.png")
    llava = [
        {
            "image": "a.png",
            "conversations": [{"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Red."}],
        }
    ] * 3
    (tmp_path / "llava.json").write_text(json.dumps(llava))
    (tmp_path / "vlg.json").write_text(
        json.dumps([{"image": "a.png", "instr-resp": [{"unsafe_instruction": "q", "response": "No."}]}])
    )
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buf, format="PNG")
    spa = tmp_path / "spa.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image": [{"bytes": buf.getvalue(), "path": None}], "question": ["q"], "chosen": ["c"],
                             "rejected": ["r"]}), spa)
    f = tmp_path / "s.yaml"
    f.write_text("""name: c
stages:
  mtl:
    kind: convert-data
    params: {sources: [{format: llava, data: llava.json, image_dir: img, limit: 2},
                       {format: vlguard, data: vlg.json, image_dir: img}]}
  pairs:
    kind: convert-data
    params: {sources: [{format: spa-vl, data: spa.parquet}]}
""")
    plan = {p.stage.name: p for p in run_study(load_study(f), tmp_path / "out")}
    rows = [json.loads(x) for x in (plan["mtl"].dir / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["images"] == [str(tmp_path / "img" / "a.png")] for r in rows)
    assert json.loads((plan["mtl"].dir / "convert.json").read_text())["per_source"] == {
        "llava:llava.json": 2,
        "vlguard:vlg.json": 1,
    }
    pair = json.loads((plan["pairs"].dir / "pairs.jsonl").read_text())
    assert pair["images"] == ["images/0000000.png"]
    assert Image.open(plan["pairs"].dir / pair["images"][0]).getpixel((0, 0)) == (0, 0, 255)
    f.write_text(f.read_text().replace("format: spa-vl", "format: llava"))
    with pytest.raises(SafeAdaptError, match="missing field"):
        run_study(load_study(f), tmp_path / "out2", only=["pairs"])
