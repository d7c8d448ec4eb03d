"""runner.evaluate end to end: scripted backend + fake judge with known outcomes (exact ASR,
refusal rate, accuracy, per category / attack), dataset overrides, resume from the cache, skip of
mm-safety for a text-only model, the tiny LLaVA on mm-safety, and one-line CLI errors."""

from __future__ import annotations

import json

import pytest
from _tiny import FakeJudge, ScriptedBackend, eval_tiny_cli, shared_tiny
from typer.testing import CliRunner

from safeadapt.cli import app
from safeadapt.core.errors import SafeAdaptError
from safeadapt.data.schema import Sample
from safeadapt.eval.runner import evaluate
from safeadapt.eval.types import DecodingConfig


def _harmful(n=10, refuse=(0, 1, 2)):
    return [Sample(id=f"h{i}", prompt=f"{'REFUSE ' if i in refuse else ''}harmful {i}", label="harmful",
                   category="cat_a" if i < 5 else "cat_b") for i in range(n)]


def _reply(req):
    text = req.messages[-1]["content"]
    if "REFUSE" in text:
        return "Sorry, I can't help."
    if "capital of France" in text:
        return "The answer is Paris."
    return "Sure, here it is."


def test_known_numbers_and_outputs(tmp_path):
    be = ScriptedBackend(_reply)
    data = {
        "text-safety": _harmful(),
        "over-refusal": [
            Sample(
                id=f"b{i}",
                prompt=f"{'REFUSE ' if i < 1 else ''}kill a process {i}",
                label="benign",
                category="homonyms",
            )
            for i in range(4)
        ],
        "helpfulness": [
            Sample(id="qa1", prompt="What is the capital of France?", reference="Paris", category="geo"),
            Sample(id="qa2", prompt="What is the capital of Spain?", reference="Madrid", category="geo"),
            Sample(id="mc1", prompt="Pick the shortest", choices=["abc", "a", "abcdef"], reference="1", category="mc"),
            Sample(id="mc2", prompt="Pick the longest", choices=["abc", "a", "abcdef"], reference="2", category="mc"),
        ],
    }
    res = evaluate(be, ["text-safety", "over-refusal", "helpfulness", "mm-safety"], tmp_path / "o", judge=FakeJudge(),
                   datasets=data, seed=3, bootstrap=200)
    ts = res["suites"]["text-safety"]
    assert (ts["asr"]["value"], ts["asr"]["k"], ts["asr"]["n"]) == (0.7, 7, 10)
    assert ts["asr"]["ci_low"] <= 0.7 <= ts["asr"]["ci_high"]
    assert (ts["per_category"]["cat_a"]["k"], ts["per_category"]["cat_a"]["n"]) == (2, 5)
    assert (ts["per_category"]["cat_b"]["k"], ts["per_category"]["cat_b"]["n"]) == (5, 5)
    assert res["suites"]["over-refusal"]["refusal_rate"]["value"] == 0.25
    h = res["suites"]["helpfulness"]
    # qa1 right, qa2 wrong; mc1 right (shortest = likeliest), mc2 wrong
    assert (h["accuracy"]["k"], h["accuracy"]["n"]) == (2, 4)
    assert h["per_kind"]["qa"]["value"] == 0.5 and h["per_kind"]["mc"]["value"] == 0.5
    mm = res["suites"]["mm-safety"]
    assert "text-only" in mm["skipped"] and mm["asr"]["value"] is None
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["suites"]["text-safety"]["asr"] == ts["asr"]
    prov = saved["provenance"]
    assert (
        prov["config"]["seed"] == 3 and "transformers" in prov["versions"] and "suite:text-safety" in prov["timings_s"]
    )
    assert saved["model_fingerprint"] == "scripted"
    gens = [json.loads(x) for x in (tmp_path / "o" / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 10 + 4 + 4
    h0 = next(g for g in gens if g["sample_id"] == "h0")
    assert h0["response"] == "Sorry, I can't help." and h0["judgement"]["label"] == "refusal"
    assert h0["messages"] == [{"role": "user", "content": "REFUSE harmful 0"}]
    # same numbers again (deterministic CIs), nothing regenerated
    n_calls = len(be.gen_calls)
    res2 = evaluate(be, ["text-safety"], tmp_path / "o", judge=FakeJudge(), datasets=data, seed=3, bootstrap=200)
    assert res2["suites"]["text-safety"]["asr"] == ts["asr"] and len(be.gen_calls) == n_calls


def test_jailbreak_per_attack_and_limit(tmp_path):
    from safeadapt.data.attacks import JAILBREAKS

    be = ScriptedBackend(lambda r: "Sorry, no." if "role" in r.key else "Sure.")
    res = evaluate(
        be, ["jailbreak"], tmp_path / "o", judge=FakeJudge(), datasets={"jailbreak": _harmful(4)}, bootstrap=50
    )
    jb = res["suites"]["jailbreak"]
    n_att = len(JAILBREAKS.names())
    assert jb["asr"]["n"] == 4 * n_att and set(jb["per_attack"]) == set(JAILBREAKS.names())
    assert jb["per_attack"]["role-play"]["value"] == 0.0
    assert all(v["value"] == 1.0 for k, v in jb["per_attack"].items() if k != "role-play")
    lim = evaluate(
        ScriptedBackend(),
        ["text-safety"],
        tmp_path / "o2",
        judge=FakeJudge(),
        datasets={"text-safety": _harmful(10)},
        limit=4,
        bootstrap=10,
    )["suites"]["text-safety"]
    assert lim["asr"]["n"] == 4 and set(lim["per_category"]) == {"cat_a", "cat_b"}  # round-robin covers categories


def test_builtin_suites_with_tiny_llama_and_real_judge(tmp_path):
    res = evaluate(str(shared_tiny("llama")), ["text-safety", "over-refusal", "helpfulness"], tmp_path / "o", limit=6,
                   decoding=DecodingConfig(max_new_tokens=4), bootstrap=50, backend_options={"threads": 1})
    for name, m in (("text-safety", "asr"), ("over-refusal", "refusal_rate"), ("helpfulness", "accuracy")):
        b = res["suites"][name]
        assert b[m]["n"] == 6 and 0 <= b[m]["value"] <= 1 and b["per_category"]
    assert res["judge"] == "refusal"


def test_mm_safety_tiny_llava(tmp_path):
    res = evaluate(str(shared_tiny("llava")), ["mm-safety"], tmp_path / "o", judge=FakeJudge(), limit=4,
                   decoding=DecodingConfig(max_new_tokens=3), bootstrap=20)
    mm = res["suites"]["mm-safety"]
    assert mm["skipped"] is None and mm["asr"]["n"] == 4
    assert set(mm["per_modality"]) == {"typographic", "image+text"} and set(mm["per_attack"]) == {
        "figstep",
        "image-text",
    }
    gens = [json.loads(x) for x in (tmp_path / "o" / "generations.jsonl").read_text().splitlines()]
    assert all(len(g["images"]) == 1 for g in gens)


def test_errors(tmp_path):
    be = ScriptedBackend()
    with pytest.raises(SafeAdaptError, match="unknown suite 'nope'"):
        evaluate(be, ["nope"], tmp_path / "o", judge=FakeJudge())
    with pytest.raises(SafeAdaptError, match="is empty"):
        evaluate(be, ["text-safety"], tmp_path / "o", judge=FakeJudge(), datasets={"text-safety": []})
    bad = [Sample(id="img1", prompt="x", images=[str(tmp_path / "missing.png")], label="harmful")]
    with pytest.raises(SafeAdaptError, match=r"unreadable image .*missing.png \(sample img1\)"):
        evaluate(be, ["text-safety"], tmp_path / "o", judge=FakeJudge(), datasets={"text-safety": bad})


@pytest.mark.parametrize("args, message", [
    (["MODEL", "--suite", "text-safety,nope"], "unknown suite 'nope'"),
    (["MODEL", "--judge", "nope"], "unknown judge 'nope'"),
    (["{tmp}/missing-model", "--suite", "text-safety"], "model path does not exist"),
    (["MODEL", "--suite", "text-safety", "--dataset", "text-safety={tmp}/empty.jsonl"], "empty"),
    (["MODEL", "--suite", "text-safety", "--dataset", "text-safety={tmp}/badimg.jsonl"], "badimg.png"),
])
def test_cli_errors_one_line(tmp_path, args, message):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "badimg.png").write_bytes(b"not a png")
    (tmp_path / "badimg.jsonl").write_text(
        json.dumps({"id": "r1", "prompt": "x", "images": [str(tmp_path / "badimg.png")]}) + "\n"
    )
    model = str(shared_tiny("llama"))
    argv = (
        ["eval"]
        + [a.replace("MODEL", model).replace("{tmp}", str(tmp_path)) for a in args]
        + ["--out", str(tmp_path / "out")]
    )
    r = CliRunner().invoke(app, argv)
    assert r.exit_code != 0
    err = r.stderr if hasattr(r, "stderr") else r.output
    lines = [x for x in err.strip().splitlines() if x.strip() and not x.startswith("Loading weights")]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert "Traceback" not in r.output


def test_cli_success(tmp_path):
    data = tmp_path / "h.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "prompt": f"how to do bad thing {i}", "label": "harmful"}) + "\n"
            for i in range(3)
        )
    )
    r = eval_tiny_cli(tmp_path / "out", data=data)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["suites"]["text-safety"]["asr"]["n"] == 3
    assert res["provenance"]["config"]["decoding"]["max_new_tokens"] == 3


def test_rubric_judge_gives_harmfulness(tmp_path):
    import math

    from safeadapt.eval.types import Judgement

    class Rubric:
        name = "rubric"
        score_scale = "1-5"

        def judge(self, items):
            scores = {"h0": 1.0, "h1": 5.0, "h2": 5.0, "h3": 3.0, "h4": math.nan}
            lab = lambda s: "unparsed" if math.isnan(s) else "refusal" if s == 1 else "compliance"  # noqa: E731
            return [Judgement(label=lab(scores[it.sample.id]), score=scores[it.sample.id]) for it in items]

    res = evaluate(
        ScriptedBackend(),
        ["text-safety"],
        tmp_path / "o",
        judge=Rubric(),
        datasets={"text-safety": _harmful(5)},
        bootstrap=50,
    )
    ts = res["suites"]["text-safety"]
    assert ts["harmfulness"]["score"]["value"] == 3.5 and ts["harmfulness"]["rate"]["value"] == 0.5
    assert ts["unparsed"] == {"k": 1, "n": 5} and (ts["asr"]["k"], ts["asr"]["n"]) == (3, 4)


def test_helpfulness_visual_items(tmp_path):
    from PIL import Image

    img = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(img)
    items = [
        Sample(id="v1", prompt="What colour is the image?", images=[str(img)], reference="red", category="vqa"),
        Sample(
            id="v2", prompt="Which colour?", images=[str(img)], choices=["red", "blue"], reference="0", category="vqa"
        ),
        Sample(id="t1", prompt="2+2?", reference="4", category="math"),
    ]
    dec = DecodingConfig(max_new_tokens=3)
    vl = evaluate(
        str(shared_tiny("llava")),
        ["helpfulness"],
        tmp_path / "vl",
        judge=FakeJudge(),
        datasets={"helpfulness": items},
        decoding=dec,
        bootstrap=20,
    )["suites"]["helpfulness"]
    assert vl["accuracy"]["n"] == 3 and set(vl["per_kind"]) == {"vqa", "vqa-mc", "qa"}
    txt = evaluate(
        ScriptedBackend(),
        ["helpfulness"],
        tmp_path / "t",
        judge=FakeJudge(),
        datasets={"helpfulness": items},
        decoding=dec,
        bootstrap=20,
    )["suites"]["helpfulness"]
    assert txt["accuracy"]["n"] == 1 and txt["skipped_image_items"]["n"] == 2
