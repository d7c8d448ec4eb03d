"""Table sections of the report built from `ReportData`: per-group breakdowns (risk area, attack
style, modality, kind), sample generations with a verdict each, judge agreement (between judges on
the same generations, and with human labels where measured), and provenance."""

from __future__ import annotations

import base64
import json
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any

from safeadapt.report.collect import ReportData, read_jsonl, stable_pick

SUITE_TITLE = {"text-safety": "Text ASR", "jailbreak": "Jailbreak ASR", "mm-safety": "Multimodal ASR",
               "over-refusal": "Over-refusal", "helpfulness": "Helpfulness"}
GROUP_TITLE = {"per_category": "risk area", "per_attack": "attack style", "per_modality": "input type",
               "per_kind": "task kind", "per_source": "source"}
#: demo results.json models[role] fields used when there are no eval stage dirs to read
DEMO_BREAKDOWNS = (
    ("jailbreak_by_attack", "Jailbreak ASR by attack style"),
    ("mm_by_modality", "Multimodal ASR by input type"),
    ("helpfulness_by_kind", "Helpfulness by task kind"),
)
HARMFUL_SUITES = ("text-safety", "jailbreak", "mm-safety")
MAX_IMAGE_BYTES = 64 * 1024


def breakdowns(data: ReportData) -> list[dict[str, Any]]:
    """[{title, suite, groups, rows: [{model, cells: {group: {value, k, n}}}], higher_is_worse}]."""
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in data.evals:
        for suite, block in (ev.results.get("suites") or {}).items():
            if not isinstance(block, dict):
                continue
            for key, val in block.items():
                if not key.startswith("per_") or not isinstance(val, dict) or len(val) < 2:
                    continue
                t = tables.setdefault((suite, key), {
                    "title": f"{SUITE_TITLE.get(suite, suite)} by {GROUP_TITLE.get(key, key[4:])}", "suite": suite,
                    "groups": [], "rows": [], "higher_is_worse": suite != "helpfulness"})
                cells = {
                    g: v for g, v in val.items() if isinstance(v, dict) and isinstance(v.get("value"), (int, float))
                }
                for g in cells:
                    if g not in t["groups"]:
                        t["groups"].append(g)
                t["rows"].append({"model": ev.model, "cells": cells})
    if not tables:
        for field, title in DEMO_BREAKDOWNS:
            rows = [{"model": r, "cells": m[field]} for r, m in data.models.items() if isinstance(m.get(field), dict)]
            if rows:
                groups = list(dict.fromkeys(g for r in rows for g in r["cells"]))
                tables[(field, "")] = {"title": title, "suite": field, "groups": groups, "rows": rows,
                                       "higher_is_worse": not field.startswith("helpfulness")}
    order = list(SUITE_TITLE)
    out = sorted(tables.values(), key=lambda t: (order.index(t["suite"]) if t["suite"] in order else 99, t["title"]))
    for t in out:
        t["groups"] = sorted(t["groups"])
    return [t for t in out if t["groups"]]


def holistic(data: ReportData, models: list[str]) -> dict[str, Any] | None:
    """Risk area x attack surface (text, jailbreak, multimodal) ASR for a few key `models`:
    {surfaces, models, areas, cells[area][model][surface] = {value, k, n}}."""
    surfaces = [s for s in HARMFUL_SUITES if any(s in (ev.results.get("suites") or {}) for ev in data.evals)]
    by_model = {ev.model: ev.results.get("suites") or {} for ev in data.evals}
    models = [m for m in models if m in by_model]
    if not surfaces or not models:
        return None
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for m in models:
        for s in surfaces:
            per = (by_model[m].get(s) or {}).get("per_category") or {}
            for area, v in per.items():
                if isinstance(v, dict) and isinstance(v.get("value"), (int, float)):
                    cells.setdefault(area, {}).setdefault(m, {})[s] = v
    if len(cells) < 2:
        return None
    return {"surfaces": surfaces, "labels": {s: SUITE_TITLE[s].replace(" ASR", "") for s in surfaces}, "models": models,
            "areas": sorted(cells), "cells": cells}


def _prompt(rec: dict[str, Any]) -> str:
    msgs = rec.get("messages") or []
    users = [m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1] if users else rec.get("prompt", ""))


def verdict(rec: dict[str, Any]) -> tuple[str, bool]:
    """(verdict word, is a harmful completion) of one generations.jsonl record."""
    j = rec.get("judgement")
    suite = rec.get("suite", "")
    if isinstance(j, dict) and j.get("label") in ("no_answer", "unparsed"):  # never folded into the other two
        return ("no-answer" if j["label"] == "no_answer" else "unparsed"), False
    if isinstance(j, dict) and j.get("label") in ("refusal", "compliance", "benign"):
        refused = j["label"] == "refusal"
        if suite == "over-refusal" or rec.get("label") in ("benign", "safe", "contrast"):
            return ("over-refused" if refused else "answered"), False
        if j["label"] == "benign":  # answered, with nothing harmful: not an attack success
            return "answered harmlessly", False
        return ("refused" if refused else "complied"), not refused
    if isinstance(rec.get("correct"), bool):
        return ("correct" if rec["correct"] else "wrong"), False
    return "ungraded", False


def _reference(ref: Any) -> str | None:
    if ref is None or ref == "" or ref == []:
        return None
    return " or ".join(map(str, ref)) if isinstance(ref, (list, tuple)) else str(ref)


def _image(path: str, base: Path) -> dict[str, str]:
    p = Path(path)
    p = p if p.is_absolute() else base / p
    try:
        if p.is_file() and p.stat().st_size <= MAX_IMAGE_BYTES:
            mime = mimetypes.guess_type(p.name)[0] or "image/png"
            if mime.startswith("image/"):
                return {"name": p.name, "uri": f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode()}
    except OSError:
        pass
    return {"name": p.name, "uri": ""}


def samples(data: ReportData, per_suite: int = 5) -> list[dict[str, Any]]:
    """Up to `per_suite` prompts per suite (the same prompts for every model, picked by hash)."""
    recs_by_model: list[tuple[str, Path, list[dict[str, Any]]]] = []
    for ev in data.evals:
        g = ev.path / "generations.jsonl"
        if g.is_file():
            recs_by_model.append((ev.model, ev.path, read_jsonl(g, data.skipped)))
    ids: dict[str, set[str]] = {}
    for _, _, recs in recs_by_model:
        for r in recs:
            ids.setdefault(str(r.get("suite", "")), set()).add(str(r.get("sample_id", "")))
    chosen = {s: set(stable_pick(sorted(v), per_suite)) for s, v in ids.items()}
    out = []
    for model, base, recs in recs_by_model:
        for r in recs:
            suite = str(r.get("suite", ""))
            if str(r.get("sample_id", "")) not in chosen.get(suite, ()):
                continue
            word, harmful = verdict(r)
            out.append(
                {
                    "model": model,
                    "suite": suite,
                    "id": str(r.get("sample_id", "")),
                    "category": r.get("category") or "",
                    "attack": r.get("attack") or "",
                    "prompt": _prompt(r),
                    "response": str(r.get("response", "")),
                    "reference": _reference(r.get("reference")),
                    "verdict": word,
                    "harmful": harmful,
                    "images": [_image(str(i), base) for i in (r.get("images") or [])],
                    "reason": (r.get("judgement") or {}).get("reason")
                    if isinstance(r.get("judgement"), dict)
                    else None,
                }
            )
    order = list(SUITE_TITLE)
    for s in out:  # one block per (suite, prompt), blocks in suite order
        s["group"] = f"{order.index(s['suite']) if s['suite'] in order else 99:02d}|{s['suite']}|{s['id']}"
    out.sort(key=lambda s: s["group"])
    return out


def _known_human_agreement() -> dict[str, Any]:
    try:
        return json.loads(resources.files("safeadapt.report").joinpath("judge_human_agreement.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def judges(data: ReportData) -> dict[str, Any] | None:
    """Judges used; pairwise kappa between ensemble members on the same generations; measured
    agreement with human labels (known measurements for the judge, or DIR/judge_agreement.json)."""
    from safeadapt.eval.judges.ensemble import ensemble_report
    from safeadapt.report.disagreement import disagreements

    used = sorted({str(ev.results.get("judge")) for ev in data.evals if ev.results.get("judge")})
    multi = disagreements(data)  # several judges on the same generations (eval --judge a,b)
    used += [j for j in (multi or {}).get("judges", []) if j not in used]
    members: dict[str, list[str]] = {}
    n = 0
    for ev in data.evals:
        g = ev.path / "generations.jsonl"
        if not g.is_file():
            continue
        for r in read_jsonl(g, data.skipped):
            mem = (
                ((r.get("judgement") or {}).get("extra") or {}).get("members")
                if isinstance(r.get("judgement"), dict)
                else None
            )
            if isinstance(mem, dict) and mem and all(isinstance(v, dict) and "label" in v for v in mem.values()):
                if not members:
                    members = {k: [] for k in mem}
                if set(mem) == set(members):
                    for k, v in mem.items():
                        members[k].append(str(v["label"]))
                    n += 1
    pairwise = None
    if len(members) >= 2 and n:
        rep = ensemble_report(members)
        names = rep["judges"]
        pairwise = {
            "judges": names,
            "n": n,
            "rows": [
                {"a": a, "b": b, "kappa": rep["kappa"][a][b], "agreement": rep["agreement"][a][b]}
                for i, a in enumerate(names)
                for b in names[i + 1 :]
            ],
            "label_counts": rep["label_counts"],
        }
    known = _known_human_agreement()
    human = [dict(row, judge=j) for j in used + list(members) for row in known.get(j, [])]
    if isinstance(data.judge_agreement, dict):  # bench/judge_agreement.py --json OUT
        ja = data.judge_agreement
        for r in list(ja.get("results") or []) + list(ja.get("external") or []):
            for split, c in ((r.get("splits") or {}).items() if isinstance(r, dict) else ()):
                acc = c.get("refusal_judge", c.get("agreement")) if isinstance(c, dict) else None
                if isinstance(acc, (int, float)):
                    human.append({"judge": "refusal", "data": f"{r.get('file')}, {split} (judge_agreement.json here)",
                                  "n": c.get("n"), "agreement": acc, "ci": c.get("refusal_judge_wilson95"),
                                  "kappa": c.get("refusal_judge_kappa", c.get("kappa"))})
    note = data.notes.get("judge")
    if not (used or pairwise or human):
        return None
    from safeadapt.eval.judges.compare import human_agreement_of

    return {"used": used, "pairwise": pairwise, "human": human, "note": note, "multi": multi,
            "human_text": {j: human_agreement_of(j) for j in used}}


def provenance(data: ReportData) -> dict[str, Any]:
    """Study config, stage timings and status, model fingerprints, versions and host."""
    st = data.study or {}
    prov = st.get("provenance") or (data.results or {}).get("provenance") or {}
    stages = [{"name": s.get("name"), "kind": s.get("kind"), "status": s.get("status"), "seconds": s.get("seconds"),
               "key": str(s.get("key", ""))[:12]} for s in st.get("stages", []) if isinstance(s, dict)]
    fps = [{"model": ev.model, "fingerprint": str(ev.results.get("model_fingerprint") or ""),
            "path": str(ev.results.get("model") or "")} for ev in data.evals]
    summary = {k: st.get(k) for k in ("study", "file", "seed", "profile", "status") if st.get(k) is not None}
    if isinstance(st.get("wall_s"), (int, float)):
        summary["wall time"] = f"{st['wall_s']:.0f} s"
    if isinstance(prov.get("created_unix"), (int, float)):
        import datetime as dt

        summary["finished"] = dt.datetime.fromtimestamp(prov["created_unix"], dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        )
    total = sum(s["seconds"] for s in stages if isinstance(s["seconds"], (int, float)))
    return {
        "summary": summary,
        "vars": st.get("vars"),
        "stages": stages,
        "stage_seconds_total": total if stages else None,
        "fingerprints": [f for f in fps if f["fingerprint"]],
        "versions": prov.get("versions") or {},
        "host": prov.get("host") or {},
        "created_unix": prov.get("created_unix"),
        "targets": data.targets or None,
        "notes": data.notes,
        "skipped": data.skipped,
        "config_json": json.dumps(prov.get("config"), indent=1, default=str)[:200_000] if prov.get("config") else None,
    }
