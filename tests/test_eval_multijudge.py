"""Several judges on the same generations (`eval --judge a,b`): generation runs once, every judge's
ASR with its Wilson interval, pairwise agreement and Cohen's kappa against a hand computation on
planted labels, the primary judge's headline fields unchanged, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
from _tiny import ScriptedBackend, eval_tiny_cli

from safeadapt.core.errors import SafeAdaptError
from safeadapt.data.schema import Sample
from safeadapt.eval.metrics import wilson_ci
from safeadapt.eval.runner import evaluate, resolve_judges

# planted labels per sample: C compliance, R refusal, N no_answer, U unparsed
PLANT_A = "CCCCCRRRNU"
PLANT_B = "CCCRRRRCRR"
CODE = {"C": "compliance", "R": "refusal", "N": "no_answer", "U": "unparsed"}


class Planted:
    """A judge returning planted labels, keyed by the sample index in the response text."""

    def __init__(self, name: str, plant: str) -> None:
        self.name, self.plant, self.calls = name, plant, 0

    def judge(self, items):
        from safeadapt.eval.types import Judgement

        self.calls += 1
        return [Judgement(label=CODE[self.plant[int(it.response.split()[-1])]], score=0.5) for it in items]  # type: ignore[arg-type]


def _data(n: int = 10):
    return [
        Sample(id=f"h{i}", prompt=f"harmful {i}", label="harmful", category="a" if i < 5 else "b") for i in range(n)
    ]


def _backend():
    return ScriptedBackend(lambda r: f"reply {r.key[1:]}")


def test_two_judges_generate_once_and_agreement_by_hand(tmp_path):
    be = _backend()
    a, b = Planted("ja", PLANT_A), Planted("jb", PLANT_B)
    res = evaluate(be, ["text-safety"], tmp_path / "o", judge=[a, b], datasets={"text-safety": _data()}, bootstrap=20)
    assert len(be.gen_calls) == 10 and sorted(be.gen_calls) == sorted(f"h{i}" for i in range(10))  # generated once
    assert a.calls == 1 and b.calls == 1
    ts = res["suites"]["text-safety"]
    # primary = the first judge: headline fields are its numbers (5 compliance of 9 parsed)
    assert (ts["asr"]["k"], ts["asr"]["n"]) == (5, 9) and res["judge"] == "ja" and res["judges"] == ["ja", "jb"]
    ja, jb = ts["judges"]["ja"], ts["judges"]["jb"]
    assert ja["asr"] == ts["asr"]
    assert (jb["asr"]["k"], jb["asr"]["n"]) == (4, 10)
    lo, hi = wilson_ci(4, 10)
    assert jb["asr"]["ci_low"] == pytest.approx(lo) and jb["asr"]["ci_high"] == pytest.approx(hi)
    assert (jb["per_category"]["a"]["k"], jb["per_category"]["b"]["k"]) == (3, 1)
    assert jb["refusal_rate"]["k"] == 6 and ja["unparsed"]["k"] == 1
    (pair,) = ts["judge_agreement"]
    assert (pair["a"], pair["b"], pair["n"], pair["positive"]) == (
        "ja",
        "jb",
        9,
        "compliance",
    )  # h9 unparsed by ja: left out
    # full label over h0..h8: A = CCCCCRRRN, B = CCCRRRRCR -> 5 of 9 agree; marginals A C5 R3 N1, B C4 R5
    pe = (5 * 4 + 3 * 5 + 1 * 0) / 81
    assert pair["label"]["agreement"] == pytest.approx(5 / 9, abs=1e-6)
    assert pair["label"]["kappa"] == pytest.approx((5 / 9 - pe) / (1 - pe), abs=1e-6) and pair["label"][
        "kappa"
    ] == pytest.approx(10 / 46, abs=1e-6)
    # binary compliance-vs-not: A TTTTTFFFF, B TTTFFFFTF -> 6 of 9; marginals A 5/4, B 4/5
    pe2 = (5 * 4 + 4 * 5) / 81
    assert pair["binary"]["agreement"] == pytest.approx(6 / 9, abs=1e-6)
    assert pair["binary"]["kappa"] == pytest.approx((6 / 9 - pe2) / (1 - pe2), abs=1e-6) and pair["binary"][
        "kappa"
    ] == pytest.approx(14 / 41, abs=1e-6)
    assert (pair["disagree"], pair["disagree_binary"]) == (4, 3)
    # generations.jsonl carries every judge's judgement; the primary's is also `judgement`
    gens = [json.loads(x) for x in (tmp_path / "o" / "generations.jsonl").read_text().splitlines()]
    h8 = next(g for g in gens if g["sample_id"] == "h8")
    assert h8["judgement"]["label"] == "no_answer" and h8["judgements"]["jb"]["label"] == "refusal"
    assert h8["judgements"]["ja"] == h8["judgement"]
    # grade many: a rerun with the judges swapped and a third one regenerates nothing
    c = Planted("jc", "C" * 10)
    res2 = evaluate(
        be, ["text-safety"], tmp_path / "o", judge=[b, a, c], datasets={"text-safety": _data()}, bootstrap=20
    )
    assert len(be.gen_calls) == 10
    ts2 = res2["suites"]["text-safety"]
    assert ts2["asr"] == jb["asr"] and list(ts2["judges"]) == ["jb", "ja", "jc"] and len(ts2["judge_agreement"]) == 3
    jc_vs_jb = next(p for p in ts2["judge_agreement"] if (p["a"], p["b"]) == ("jb", "jc"))
    assert jc_vs_jb["n"] == 10 and jc_vs_jb["binary"]["agreement"] == pytest.approx(0.4)
    assert jc_vs_jb["binary"]["kappa"] == pytest.approx(0.0)  # jc says compliance to all: no agreement beyond chance


def test_one_judge_output_unchanged(tmp_path):
    be = _backend()
    res = evaluate(
        be,
        ["text-safety"],
        tmp_path / "o",
        judge=[Planted("ja", PLANT_A)],
        datasets={"text-safety": _data()},
        bootstrap=20,
    )
    ts = res["suites"]["text-safety"]
    assert "judges" not in ts and "judge_agreement" not in ts and "judges" not in res
    gens = [json.loads(x) for x in (tmp_path / "o" / "generations.jsonl").read_text().splitlines()]
    assert all("judgements" not in g for g in gens)


def test_over_refusal_binary_is_refusal_and_human_agreement(tmp_path):
    be = _backend()
    benign = [Sample(id=f"h{i}", prompt=f"benign {i}", label="benign") for i in range(10)]
    res = evaluate(be, ["over-refusal"], tmp_path / "o", judge=["refusal", Planted("jb", PLANT_B)],
                   datasets={"over-refusal": benign}, bootstrap=20)
    blk = res["suites"]["over-refusal"]
    assert blk["judge_agreement"][0]["positive"] == "refusal"
    assert (blk["judges"]["jb"]["refusal_rate"]["k"], blk["judges"]["jb"]["refusal_rate"]["n"]) == (6, 10)
    # the registry's refusal judge carries its measured human agreement; an unregistered judge none
    from safeadapt.eval.judges.refusal import RefusalJudge

    assert RefusalJudge.human_agreement and blk["judges"]["refusal"]["human_agreement"] == RefusalJudge.human_agreement
    assert blk["judges"]["jb"]["human_agreement"] is None


def test_resolve_judges_names_and_options():
    js = resolve_judges("refusal,ensemble", {"refusal": {"threshold": 0.7}})
    assert list(js) == ["refusal", "ensemble"] and js["refusal"].threshold == 0.7
    assert resolve_judges("refusal", {"threshold": 0.6})["refusal"].threshold == 0.6  # one judge: its own kwargs
    with pytest.raises(SafeAdaptError, match="given twice"):
        resolve_judges("refusal,refusal")
    with pytest.raises(SafeAdaptError, match="'threshold' is not one of the judges"):
        resolve_judges("refusal,ensemble", {"threshold": 0.7})
    with pytest.raises(SafeAdaptError, match="unknown judge 'nope'"):
        resolve_judges(["refusal", "nope"])


def test_cli_two_judges(tmp_path):
    data = tmp_path / "h.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "text": f"how to do bad thing {i}"}) + "\n" for i in range(3)))
    r = eval_tiny_cli(tmp_path / "out", "--judge", "refusal,ensemble", data=data)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    ts = res["suites"]["text-safety"]
    assert res["judges"] == ["refusal", "ensemble"] and set(ts["judges"]) == {"refusal", "ensemble"}
    # the ensemble of the refusal judge alone says what the refusal judge says
    assert ts["judge_agreement"][0]["label"]["agreement"] == 1.0 and ts["judge_agreement"][0]["n"] == 3
    assert "judges on the same generations" in r.output
    assert not math.isnan(ts["judges"]["ensemble"]["asr"]["value"])


def test_cli_unknown_second_judge_one_line(tmp_path):
    r = eval_tiny_cli(tmp_path / "out", "--judge", "refusal,nope")
    assert r.exit_code != 0
    err = r.stderr if hasattr(r, "stderr") else r.output
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "unknown judge 'nope'" in lines[0] and not (tmp_path / "out").exists()


def test_single_judge_specs_keep_their_hashes():
    """The eval stage's params and the search's eval spec dump as before the judge list and the
    templates field existed (hashes computed on main before the change): study keys and search
    fingerprints of existing files are unchanged."""
    from safeadapt.core.provenance import stable_hash
    from safeadapt.repair.search.space import EvalSpec
    from safeadapt.study.stages.eval import EvalStageParams

    d = EvalStageParams.model_validate({"suites": ["text-safety", "jailbreak"], "judge": "refusal",
                                        "datasets": {"text-safety": "x.csv"}}).model_dump(mode="json")
    assert stable_hash(d) == "fbac23575cce30386f88620fbe0f6e664bf3a9b0759120a9587a5896db0476b5"
    assert (
        stable_hash(EvalSpec().model_dump(mode="json"))
        == "d8bc6e3628c97029b73b4a074c4ff45dc73aa248bf6f40dfdd4478184672c3c3"
    )
    two = EvalStageParams.model_validate(
        {"suites": ["jailbreak"], "judge": ["refusal", "ensemble"], "jailbreak_templates": "t.yaml"}
    )
    assert (
        two.model_dump(mode="json")["judge"] == ["refusal", "ensemble"]
        and two.model_dump()["jailbreak_templates"] == "t.yaml"
    )
