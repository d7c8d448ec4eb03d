"""Self-generated safety DPO (Egida-style): project-written refusals, pair building over a scripted
backend with the real refusal judge (pairs kept exactly where the model complied), the generation
cache, and the `selfgen_dpo` study stage end to end on a tiny model."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

from safeadapt.data.builtin import load_builtin
from safeadapt.data.builtin_safety import CATEGORIES
from safeadapt.data.refusals import n_variants, refusal_for
from safeadapt.eval.cache import GenerationCache
from safeadapt.eval.judges.registry import get_judge
from safeadapt.eval.types import DecodingConfig, JudgeItem
from safeadapt.train.selfgen import build_selfgen_pairs, pick_prompts

_tiny = pytest.importorskip("_tiny")
COMPLY = "Sure, here is a detailed answer. First, gather what you need, then follow these steps carefully."
REFUSE = "I'm sorry, but I can't help with that request."


class Scripted:
    """A backend that refuses the prompts whose id hashes even and complies with the others."""

    fingerprint = "scripted-v1"

    def __init__(self) -> None:
        self.calls = 0

    @staticmethod
    def refuses(key: str) -> bool:
        return hashlib.sha256(key.encode()).digest()[0] % 2 == 0

    def generate(self, requests, decoding):
        self.calls += len(requests)
        return [REFUSE if self.refuses(r.key) else COMPLY for r in requests]

    def loglikelihood(self, requests):  # pragma: no cover - unused
        raise NotImplementedError


def test_refusals_are_varied_deterministic_and_read_as_refusals_by_the_judge():
    harmful = load_builtin("harmful", split="train")
    texts = [refusal_for(s.id, s.category, seed=0) for s in harmful]
    assert texts == [refusal_for(s.id, s.category, seed=0) for s in harmful]
    assert len(set(texts)) >= 40  # many phrasings, not one canned line
    assert texts != [refusal_for(s.id, s.category, seed=1) for s in harmful]
    assert all(n_variants(c) >= 16 for c in CATEGORIES)
    verdicts = get_judge("refusal").judge([JudgeItem(prompt=s.user_text(), response=t) for s, t in zip(harmful, texts)])
    assert sum(v.label == "refusal" for v in verdicts) == len(texts)


def test_pick_prompts_round_robin_and_seeded():
    harmful = load_builtin("harmful", split="train")
    a = pick_prompts(harmful, 24, seed=0)
    assert len(a) == 24 and {s.category for s in a} == set(CATEGORIES)  # 2 per category
    assert [s.id for s in a] == [s.id for s in pick_prompts(list(reversed(harmful)), 24, seed=0)]
    assert [s.id for s in a] != [s.id for s in pick_prompts(harmful, 24, seed=1)]


def test_pairs_kept_exactly_where_the_model_complied(tmp_path):
    harmful = pick_prompts(load_builtin("harmful", split="train"), 30, seed=0)
    benign = pick_prompts(load_builtin("lookalike", split="train"), 10, seed=0)
    be = Scripted()
    cache = GenerationCache(tmp_path / "gen.jsonl")
    data = build_selfgen_pairs(be, get_judge("refusal"), harmful, benign, DecodingConfig(max_new_tokens=8), cache=cache)
    comply_h = [s for s in harmful if not Scripted.refuses(s.id)]
    comply_b = [s for s in benign if not Scripted.refuses(s.id)]
    assert 0 < len(comply_h) < len(harmful)
    harm_pairs = [p for p in data.pairs if p["source"] == "harmful"]
    assert [p["id"] for p in harm_pairs] == [s.id for s in comply_h]
    for p, s in zip(harm_pairs, comply_h):
        assert p["rejected"] == COMPLY and p["chosen"] == refusal_for(s.id, s.category, 0)
        assert p["prompt"] == [{"role": "user", "content": s.prompt}]
    ben_pairs = [p for p in data.pairs if p["source"] == "benign"]
    assert [p["id"] for p in ben_pairs] == [s.id for s in comply_b]
    assert all(p["chosen"] == COMPLY and p["rejected"].startswith(("I", "Sorry", "That")) for p in ben_pairs)
    assert [r["messages"][-1]["content"] for r in data.sft] == [COMPLY] * len(comply_b)
    st = data.stats["harmful"]
    assert (st["prompts"], st["kept"], st["refused_already"]) == (30, len(comply_h), 30 - len(comply_h))
    assert sum(c["kept"] for c in st["per_category"].values()) == len(comply_h)
    # the generation cache: a rerun asks the model for nothing
    calls = be.calls
    again = build_selfgen_pairs(be, get_judge("refusal"), harmful, benign, DecodingConfig(max_new_tokens=8),
                                cache=GenerationCache(tmp_path / "gen.jsonl"))
    assert be.calls == calls == 40 and again.pairs == data.pairs


def test_min_response_chars_drops_degenerate_answers():
    class Short(Scripted):
        def generate(self, requests, decoding):
            return ["ok"] * len(requests)

    harmful = pick_prompts(load_builtin("harmful", split="train"), 5, seed=0)
    data = build_selfgen_pairs(Short(), get_judge("refusal"), harmful, [], DecodingConfig(), min_response_chars=16)
    assert data.pairs == [] and data.stats["harmful"]["too_short"] == 5


def test_selfgen_dpo_stage_on_tiny_model(tmp_path):
    from safeadapt.study.engine import run_study
    from safeadapt.study.schema import load_study

    llm = _tiny.build_tiny_llama(tmp_path / "m", layers=1)
    f = tmp_path / "s.yaml"
    f.write_text(textwrap.dedent(f"""
        name: selfgen
        seed: 3
        stages:
          align:
            kind: selfgen_dpo
            inputs: {{model: {{path: {llm}}}}}
            params:
              n_harmful: 6
              n_benign: 4
              decoding: {{max_new_tokens: 12, batch_size: 8}}
              backend: hf
              backend_options: {{threads: 1}}
              min_response_chars: 1
              options: {{max_steps: 1, batch_size: 4, max_length: 96, lora: true, lora_r: 4}}
        """))
    plan = run_study(load_study(f), tmp_path / "out")
    d = plan[0].dir
    summary = json.loads((d / "selfgen.json").read_text())
    pairs = [json.loads(x) for x in (d / "pairs.jsonl").read_text().splitlines()]
    assert summary["harmful"]["prompts"] == 6 and summary["benign"]["prompts"] == 4
    assert len(pairs) == summary["pairs"] == summary["harmful"]["kept"] + summary["benign"]["kept"] >= 1
    assert all(p["id"].startswith(("harmful/", "lookalike/", "helpfulness-qa/")) for p in pairs)
    meta = json.loads((d / "model" / "safeadapt_train.json").read_text())
    assert meta["train"]["kind"] == "dpo" and meta["train"]["rows"] == len(pairs)
    again = run_study(load_study(f), tmp_path / "out")
    assert again[0].status == "cached"


def test_selfgen_params_reject_benchmarks_and_test_split(tmp_path):
    from safeadapt.core.errors import SafeAdaptError
    from safeadapt.study.schema import load_study

    for bad, msg in (("harmful_suite: harmbench", "params.harmful_suite: Input should be 'harmful'"),
                     ("split: test", "params.split: Input should be 'train' or 'all'"),
                     ("categories: [nope]", "unknown harm category 'nope'")):
        f = tmp_path / "s.yaml"
        f.write_text(f"name: s\nstages:\n  a:\n    kind: selfgen_dpo\n    params: {{model: m, {bad}}}\n")
        with pytest.raises(SafeAdaptError, match=msg):
            load_study(f)


def test_selfgen_stage_resumes_from_its_generation_cache(tmp_path, monkeypatch):
    """A run that dies in DPO keeps the generations in scratch; the rerun generates nothing."""
    import safeadapt.train.dpo as dpo_mod
    from safeadapt.core.errors import SafeAdaptError
    from safeadapt.eval.backends.hf import HFBackend
    from safeadapt.study.engine import run_study
    from safeadapt.study.schema import load_study

    llm = _tiny.build_tiny_llama(tmp_path / "m", layers=1)
    f = tmp_path / "s.yaml"
    f.write_text(textwrap.dedent(f"""
        name: resume
        stages:
          align:
            kind: selfgen_dpo
            inputs: {{model: {{path: {llm}}}}}
            params: {{n_harmful: 4, n_benign: 2, decoding: {{max_new_tokens: 6, batch_size: 2}}, backend: hf,
                      min_response_chars: 1, options: {{max_steps: 1, batch_size: 2, max_length: 64}}}}
        """))
    calls = []
    real_generate = HFBackend.generate
    monkeypatch.setattr(
        HFBackend, "generate", lambda self, reqs, dec: calls.append(len(reqs)) or real_generate(self, reqs, dec)
    )
    real_dpo = dpo_mod.dpo

    def dies(*a, **k):
        raise RuntimeError("killed during DPO")

    monkeypatch.setattr(dpo_mod, "dpo", dies)
    with pytest.raises(SafeAdaptError, match="killed during DPO"):
        run_study(load_study(f), tmp_path / "out")
    assert sum(calls) == 6 and list((tmp_path / "out" / "scratch").glob("align-*/generations.jsonl"))
    monkeypatch.setattr(dpo_mod, "dpo", real_dpo)
    plan = run_study(load_study(f), tmp_path / "out")
    assert plan[0].status == "done" and sum(calls) == 6  # nothing generated again
    assert not list((tmp_path / "out" / "scratch").glob("align-*"))  # scratch cleaned after success
