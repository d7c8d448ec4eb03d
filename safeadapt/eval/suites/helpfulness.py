"""Suite "helpfulness": multiple-choice items scored by log-likelihood of each choice after the
chat prompt (argmax = prediction) and short-answer items scored by normalised exact match /
whole-word containment of the reference (or any `metadata["aliases"]`) -> accuracy, overall, per
category, per item kind (mc, qa, vqa for items with images), and text vs visual items apart
(`accuracy_text`, `accuracy_visual`: the combined figure mixes them in different shares per model). Image items are
skipped, with the
count recorded, for a text-only model; MC items likewise for a backend without log-likelihoods."""

from __future__ import annotations

from typing import Any

from safeadapt.data.schema import Sample
from safeadapt.eval import metrics as M
from safeadapt.eval.cache import cached_generate
from safeadapt.eval.suites.base import (
    SUITES,
    Suite,
    SuiteContext,
    SuiteResult,
    gen_request,
    loglikelihoods,
    sample_fields,
)
from safeadapt.eval.types import LoglikRequest


def _mc_answer(s: Sample) -> int:
    choices = s.choices or []
    ref = (s.reference or "").strip()
    if ref.lstrip("-").isdigit() and 0 <= int(ref) < len(choices):
        return int(ref)
    for i, c in enumerate(choices):
        if M.normalise_answer(c) == M.normalise_answer(ref):
            return i
    if len(ref) == 1 and ref.upper().isalpha() and ord(ref.upper()) - 65 < len(choices):
        return ord(ref.upper()) - 65
    from safeadapt.core.errors import SafeAdaptError

    raise SafeAdaptError(f"multiple-choice sample {s.id}: reference {ref!r} is neither a choice index nor a choice")


@SUITES.register("helpfulness")
class Helpfulness(Suite):
    metric = "accuracy"

    def default_samples(self, ctx: SuiteContext) -> list[Sample]:
        from safeadapt.data.builtin import load_builtin

        return load_builtin("helpfulness-mc", split="test", seed=ctx.seed) + load_builtin(
            "helpfulness-qa", split="test", seed=ctx.seed
        )

    def run(self, items: list[Sample], ctx: SuiteContext) -> SuiteResult:
        from safeadapt.core.errors import SafeAdaptError

        notes: dict[str, Any] = {}
        usable = items
        if not ctx.supports_images:
            usable = [s for s in items if not s.images]
            if len(usable) < len(items):
                notes["skipped_image_items"] = {"n": len(items) - len(usable), "reason": "model is text-only"}
        mc = [s for s in usable if s.choices]
        qa = [s for s in usable if not s.choices]
        for s in qa:
            if not s.reference:
                raise SafeAdaptError(f"helpfulness sample {s.id} has neither choices nor a reference answer")
        records: list[dict[str, Any]] = []
        # multiple choice by log-likelihood
        if mc:
            reqs = [LoglikRequest(key=f"{s.id}::choice{i}", messages=s.chat(), continuation=c, images=list(s.images))
                    for s in mc for i, c in enumerate(s.choices or [])]
            try:
                lls = loglikelihoods(reqs, ctx)
            except NotImplementedError as e:
                notes["skipped_mc_items"] = {"n": len(mc), "reason": str(e) or "backend has no log-likelihoods"}
                mc, lls = [], []
            pos = 0
            for s in mc:
                n = len(s.choices or [])
                ll = lls[pos : pos + n]
                pos += n
                pred, gold = M.mc_prediction(ll), _mc_answer(s)
                records.append(
                    {
                        "suite": self.name,
                        **sample_fields(s),
                        "kind": "vqa-mc" if s.images else "mc",
                        "choices": s.choices,
                        "logliks": ll,
                        "prediction": pred,
                        "answer": gold,
                        "correct": pred == gold,
                    }
                )
        # short answers by generation
        if qa:
            responses = cached_generate(
                ctx.backend, [gen_request(s) for s in qa], ctx.decoding, ctx.cache, on_progress=ctx.progress
            )
            for s, r in zip(qa, responses):
                refs = [s.reference or ""] + [str(a) for a in s.metadata.get("aliases", [])]
                records.append({"suite": self.name, **sample_fields(s), "kind": "vqa" if s.images else "qa",
                                "response": r, "reference": refs, "correct": M.answer_matches(r, refs)})
        flags = [bool(r["correct"]) for r in records]
        res = M.rate_with_groups(flags, [r.get("category") for r in records], seed=ctx.seed, n_boot=ctx.bootstrap)
        visual = [bool(r["images"]) for r in records]
        out: dict[str, Any] = {
            "metric": self.metric,
            "accuracy": res["overall"],
            "per_category": res["per_category"],
            "per_kind": M.grouped(
                flags, [r["kind"] for r in records], M.proportion, seed=ctx.seed, n_boot=ctx.bootstrap
            ),
            # text-only and image items apart, so a text-only model compares with a VLM
            "accuracy_text": M.proportion([f for f, v in zip(flags, visual) if not v]),
            "accuracy_visual": M.proportion([f for f, v in zip(flags, visual) if v]),
        }
        out.update(notes)
        return SuiteResult(out, records)
