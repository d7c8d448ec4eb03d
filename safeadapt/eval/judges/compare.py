"""Several judges on the same generations: each judge's headline rate (with its Wilson interval and
outcome rates) and the pairwise raw agreement and Cohen's kappa between judges, on the binary
reading the suite's metric counts and on the full label. Items any judge left `unparsed` are out."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from safeadapt.eval.judges.agreement import agreement, cohen_kappa


def judge_label(judgement: Any) -> str:
    return str(judgement["label"] if isinstance(judgement, dict) else judgement.label)


def human_agreement_of(name: str, judge: Any = None) -> str | None:
    """The judge's known agreement with human labels: `human_agreement` on its class in the judge
    registry (or on the object given), None when nobody measured it."""
    from safeadapt.eval.judges.registry import JUDGES

    base = name.split("#", 1)[0]
    factory = JUDGES.get(base) if base in JUDGES else None
    value = getattr(factory, "human_agreement", None) if factory is not None else None
    if value is None and judge is not None:
        value = getattr(judge, "human_agreement", None) or getattr(type(judge), "human_agreement", None)
    return str(value) if value else None


def pair_agreement(a: Sequence[Any], b: Sequence[Any], positive: str) -> dict[str, Any]:
    """Raw agreement and kappa of two judges' judgements of the same items: `binary` = both agree
    whether an item is `positive`, `label` = the same label; `disagree` counts full-label
    disagreements. Items either judge left unparsed are left out (`n` counts the rest)."""
    la = [judge_label(x) for x in a]
    lb = [judge_label(x) for x in b]
    keep = [i for i in range(len(la)) if la[i] != "unparsed" and lb[i] != "unparsed"]
    la, lb = [la[i] for i in keep], [lb[i] for i in keep]
    ba = [str(x == positive) for x in la]
    bb = [str(x == positive) for x in lb]

    def num(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 6)  # NaN (no item) -> None

    return {
        "n": len(la),
        "positive": positive,
        "binary": {"agreement": num(agreement(ba, bb)), "kappa": num(cohen_kappa(ba, bb))},
        "label": {"agreement": num(agreement(la, lb)), "kappa": num(cohen_kappa(la, lb))},
        "disagree": sum(x != y for x, y in zip(la, lb)),
        "disagree_binary": sum(x != y for x, y in zip(ba, bb)),
    }


def compare_judges(records: Sequence[Mapping[str, Any]], metric: str, names: Sequence[str], *,
                   human: Mapping[str, str | None] | None = None, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """{"judges": {name: {metric: {value, ci_low, ci_high, k, n}, per_category, outcome rates,
    human_agreement}}, "agreement": [{a, b, n, binary, label, disagree}]} over generations.jsonl
    records carrying `judgements[name]` for every name. `metric` "asr" counts compliance,
    "refusal_rate" refusal (the binary reading of the agreement is the same label)."""
    from safeadapt.eval import metrics as M

    positive = "compliance" if metric == "asr" else "refusal"
    fn = M.asr if metric == "asr" else M.refusal_rate
    cats = [r.get("category") for r in records]
    per: dict[str, Any] = {}
    for nm in names:
        js = [r["judgements"][nm] for r in records]
        res = fn(js, cats, seed=seed, n_boot=n_boot)
        block: dict[str, Any] = {metric: res["overall"], "per_category": res["per_category"]}
        block.update({k: v for k, v in M.outcome_rates(js).items() if k != metric})
        block["human_agreement"] = (human or {}).get(nm)
        per[nm] = block
    pairs = [
        {
            "a": a,
            "b": b,
            **pair_agreement([r["judgements"][a] for r in records], [r["judgements"][b] for r in records], positive),
        }
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    return {"judges": per, "agreement": pairs}
