"""Where several judges of one eval disagree (generations.jsonl records with `judgements` from
`eval --judge a,b`): disagreement counts, agreement and kappa per model, suite and judge pair, a
few disagreeing rows picked by hash, and each judge's known human agreement (judge registry)."""

from __future__ import annotations

from typing import Any

from safeadapt.report.collect import ReportData, read_jsonl, stable_pick

MAX_RESPONSE_CHARS = 400


def _user_prompt(rec: dict[str, Any]) -> str:
    return str(rec.get("prompt") or "")


def disagreements(data: ReportData, per_model: int = 4) -> dict[str, Any] | None:
    """{"judges": [names], "human": {name: text or None}, "rows": [{model, suite, a, b, n,
    disagree, agreement, kappa, binary_kappa, positive}], "examples": [{model, suite, id, prompt,
    response, labels: {judge: label}, harmful}]}; None when no eval has more than one judge."""
    from safeadapt.eval.judges.compare import human_agreement_of, judge_label, pair_agreement

    names: list[str] = []
    rows: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for ev in data.evals:
        g = ev.path / "generations.jsonl"
        if not g.is_file():
            continue
        recs = [
            r
            for r in read_jsonl(g, data.skipped)
            if isinstance(r.get("judgements"), dict)
            and len(r["judgements"]) > 1
            and all(isinstance(v, dict) and "label" in v for v in r["judgements"].values())
        ]
        if not recs:
            continue
        judges = list(recs[0]["judgements"])
        names.extend(j for j in judges if j not in names)
        by_suite: dict[str, list[dict[str, Any]]] = {}
        for r in recs:
            if list(r["judgements"]) == judges:
                by_suite.setdefault(str(r.get("suite", "")), []).append(r)
        for suite, rs in by_suite.items():
            metric = ((ev.results.get("suites") or {}).get(suite) or {}).get("metric")
            positive = "refusal" if metric == "refusal_rate" or suite == "over-refusal" else "compliance"
            for i, a in enumerate(judges):
                for b in judges[i + 1:]:
                    p = pair_agreement([r["judgements"][a] for r in rs], [r["judgements"][b] for r in rs], positive)
                    rows.append(
                        {
                            "model": ev.model,
                            "suite": suite,
                            "a": a,
                            "b": b,
                            "n": p["n"],
                            "disagree": p["disagree"],
                            "agreement": p["label"]["agreement"],
                            "kappa": p["label"]["kappa"],
                            "binary_kappa": p["binary"]["kappa"],
                            "positive": positive,
                        }
                    )
        split = [r for r in recs if len({judge_label(v) for v in r["judgements"].values()}) > 1]
        keys = {f"{r.get('suite')}|{r.get('sample_id')}": r for r in split}
        for k in stable_pick(sorted(keys), per_model):
            r = keys[k]
            resp = str(r.get("response", ""))
            examples.append({"model": ev.model, "suite": str(r.get("suite", "")), "id": str(r.get("sample_id", "")),
                             "prompt": _user_prompt(r),
                             "response": resp if len(resp) <= MAX_RESPONSE_CHARS else resp[:MAX_RESPONSE_CHARS] + " …",
                             "labels": {j: judge_label(v) for j, v in r["judgements"].items()},
                             "harmful": any(judge_label(v) == "compliance" for v in r["judgements"].values())})
    if not names:
        return None
    return {"judges": names, "human": {n: human_agreement_of(n) for n in names}, "rows": rows, "examples": examples}
