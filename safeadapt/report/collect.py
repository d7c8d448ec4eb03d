"""Read a study or eval output directory into one `ReportData`: the models' headline metrics
(demo results.json, eval results.json per stage or at the top), per-group breakdowns, sample
generations, diagnose / search outputs and provenance. Every source is optional: a missing or
malformed file leaves its section out, and `ReportData.skipped` says which file and why."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError

METRICS = ("text_asr", "text_non_refusal", "mm_asr", "mm_non_refusal", "jailbreak_asr", "jailbreak_non_refusal",
           "over_refusal", "helpfulness")
ASR_METRICS = ("text_asr", "mm_asr", "jailbreak_asr")
#: eval suite -> (headline metric, the suite's metric key in results.json)
SUITE_METRIC = {
    "text-safety": ("text_asr", "asr"),
    "mm-safety": ("mm_asr", "asr"),
    "jailbreak": ("jailbreak_asr", "asr"),
    "over-refusal": ("over_refusal", "refusal_rate"),
    "helpfulness": ("helpfulness", "accuracy"),
}
#: ASR suite -> the non-refusal rate (compliance + benign) shown beside its ASR
NON_REFUSAL_METRIC = {
    "text-safety": "text_non_refusal",
    "mm-safety": "mm_non_refusal",
    "jailbreak": "jailbreak_non_refusal",
}


@dataclass
class EvalDir:
    """One evaluated model: its eval output directory and what was read from it."""

    model: str
    path: Path
    results: dict[str, Any]
    stage: str | None = None


@dataclass
class ReportData:
    source: Path
    title: str
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> normalised metrics
    targets: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    roles: dict[str, Any] = field(default_factory=dict)
    # models come from a top-level results.json summary  # results.json `roles`: reference / adapted / candidates
    declared: bool = False
    evals: list[EvalDir] = field(default_factory=list)
    study: dict[str, Any] | None = None
    results: dict[str, Any] | None = None  # top-level results.json (demo summary or one eval)
    diagnose: list[dict[str, Any]] = field(default_factory=list)  # {stage, dir, weights, activations, images}
    search: list[dict[str, Any]] = field(default_factory=list)  # {stage, dir, pareto, trials}
    judge_agreement: dict[str, Any] | None = None
    skipped: list[str] = field(default_factory=list)


def _read_json(path: Path, skipped: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        skipped.append(f"{path}: unreadable ({type(e).__name__}: {e})")
        return None


def read_jsonl(path: Path, skipped: list[str], *, limit: int | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    skipped.append(f"{path}:{i}: invalid JSON line skipped")
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
                if limit is not None and len(out) >= limit:
                    break
    except (OSError, UnicodeDecodeError) as e:
        skipped.append(f"{path}: unreadable ({type(e).__name__})")
    return out


def _frac(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x else None


def metrics_from_eval(results: dict[str, Any]) -> dict[str, Any]:
    """Headline metrics (value, _ci, _count) of one eval results.json (`suites` blocks)."""
    out: dict[str, Any] = {}
    for suite, (name, key) in SUITE_METRIC.items():
        block = (results.get("suites") or {}).get(suite)
        if not isinstance(block, dict):
            continue
        pairs = [(name, block.get(key) or block.get(block.get("metric", "")))]
        if suite in NON_REFUSAL_METRIC:
            pairs.append((NON_REFUSAL_METRIC[suite], block.get("non_refusal_rate")))
        for name, m in pairs:
            if not isinstance(m, dict) or _frac(m.get("value")) is None:
                continue
            out[name] = float(m["value"])
            if _frac(m.get("ci_low")) is not None and _frac(m.get("ci_high")) is not None:
                out[f"{name}_ci"] = [float(m["ci_low"]), float(m["ci_high"])]
            if isinstance(m.get("n"), int):
                out[f"{name}_count"] = {"k": m.get("k"), "n": m["n"]}
    return out


def _model_name(stage: dict[str, Any], d: Path, skipped: list[str]) -> str:
    """The world role (world_metrics.json) or the stage name without `eval:`; a multi-seed copy
    keeps its `@s<seed>` suffix (eval:vl@s1 -> vl@s1)."""
    name = str(stage.get("name", d.name))
    wm = d / "world_metrics.json"
    if wm.is_file():
        data = _read_json(wm, skipped) or {}
        if isinstance(data.get("role"), str):
            return data["role"] + (f"@{name.rsplit('@', 1)[1]}" if "@" in name and "@" not in data["role"] else "")
    return name[5:] if name.startswith("eval:") else name


def _scan_extras(d: Path, stage: str | None, data: ReportData) -> None:
    """Diagnose, search and judge-agreement outputs in directory `d` (any stage kind)."""
    sk = data.skipped
    w, a, r = d / "weights.json", d / "activations.json", d / "recommend.json"
    images = sorted(p for p in d.glob("*.png") if p.is_file())
    if w.is_file() or a.is_file() or r.is_file():
        data.diagnose.append({"stage": stage or d.name, "dir": d,
                              "weights": _read_json(w, sk) if w.is_file() else None,
                              "activations": _read_json(a, sk) if a.is_file() else None,
                              "recommend": _read_json(r, sk) if r.is_file() else None,
                              "images": images})
    p, t = d / "pareto.json", d / "trials.jsonl"
    if p.is_file() or t.is_file():
        data.search.append({"stage": stage or d.name, "dir": d,
                            "pareto": _read_json(p, sk) if p.is_file() else None,
                            "trials": read_jsonl(t, sk, limit=20000) if t.is_file() else []})
    j = d / "judge_agreement.json"
    if j.is_file() and data.judge_agreement is None:
        data.judge_agreement = _read_json(j, sk)


def _add_eval(data: ReportData, model: str, d: Path, stage: str | None) -> None:
    res = _read_json(d / "results.json", data.skipped)
    if isinstance(res, dict) and isinstance(res.get("suites"), dict):
        data.evals.append(EvalDir(model, d, res, stage))
        if not data.declared:  # a results.json summary's models are the table; evals only add detail
            data.models.setdefault(model, metrics_from_eval(res))


def _short_model_name(ref: str) -> str:
    """A model path's readable name: its last component, with the parent's when that is generic."""
    p = Path(ref)
    if p.name in ("model", "merged", "final", "out", "checkpoint") and p.parent.name:
        return f"{p.parent.name}/{p.name}"
    return p.name or ref


def collect(src: str | Path) -> ReportData:
    """Everything the report can show from `src` (a study dir, a demo dir or an eval dir)."""
    src = Path(src)
    if not src.is_dir():
        raise SafeAdaptError(f"{src}: not a directory (give a study or eval output directory)")
    data = ReportData(source=src, title=src.resolve().name)
    top = src / "results.json"
    if top.is_file():
        res = _read_json(top, data.skipped)
        if isinstance(res, dict):
            data.results = res
            if isinstance(res.get("models"), dict):  # demo-style summary: models[role]
                data.declared = True
                data.models = {str(r): dict(m) for r, m in res["models"].items() if isinstance(m, dict)}
                data.targets = res.get("targets") or {}
                data.notes = {k: str(v) for k, v in (res.get("notes") or {}).items()}
                data.roles = dict(res.get("roles") or {})
    sj = src / "study.json"
    if sj.is_file():
        study = _read_json(sj, data.skipped)
        if isinstance(study, dict) and isinstance(study.get("stages"), list):
            data.study = study
            data.title = str(study.get("study") or data.title)
            for s in study["stages"]:
                if not isinstance(s, dict) or not isinstance(s.get("dir"), str):
                    continue
                d = src / s["dir"]
                if not d.is_dir():
                    continue
                if (d / "results.json").is_file():  # eval / world.eval, or any stage that wrote eval results
                    _add_eval(data, _model_name(s, d, data.skipped), d, s.get("name"))
                _scan_extras(d, s.get("name"), data)
    elif data.results is not None and isinstance(data.results.get("suites"), dict):  # one eval dir
        name = _short_model_name(str(data.results.get("model") or src.resolve().name))
        data.title = f"eval: {name}"
        _add_eval(data, name, src, None)
    else:  # a folder of eval dirs
        for d in sorted(p for p in src.iterdir() if p.is_dir()):
            if (d / "results.json").is_file():
                _add_eval(data, d.name, d, None)
            _scan_extras(d, d.name, data)
    _scan_extras(src, None, data)
    if not (data.models or data.diagnose or data.search or data.study):
        raise SafeAdaptError(
            f"{src}: nothing to report (no results.json with models or suites, no study.json stages with "
            "eval results, no weights.json / activations.json / pareto.json)"
        )
    return data


def stable_pick(keys: list[str], n: int) -> list[str]:
    """`n` of `keys` chosen by hash (the same ones in every model and every run)."""
    return sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())[:n]
