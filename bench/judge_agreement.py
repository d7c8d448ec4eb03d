"""Agreement of the offline `refusal` judge (and of an XSTest-style string-match baseline) with the
human `final_label` on every XSTest completions file, 2-way (any refusal vs full compliance), per
file and per prompt type, on the dev split (its rules were written and its weights fit there; see
bench/fit_refusal_weights.py for the cross-validation inside dev) and the held-out split (never
looked at while tuning). Split = sha256 of the prompt id (70% dev / 30% held-out).

`--external DIR` also scores the completions_*.csv files in DIR: other models' XSTest completions
with the same human annotation (upstream paul-rottger/exaggerated-safety
`model_completions/xstest_v2_completions_{gpt4,llama2new,mistralguard}.csv`, renamed
`completions_*.csv`), split the same way. Their dev rows are tuning material (cues were written and
weights fit on them); their held-out 30% is the clean figure.

`--families DIR` (default bench/data/judge_families) scores the out-of-family completions this project
generated (bench/judge_completions.py: SmolLM2-135M-Instruct on XSTest / HarmBench / StrongREJECT,
degenerate outputs of an untrained-projector VLM, of SmolLM2 sampled too hot and fine-tuned too hard),
labelled by careful reading as refusal / compliance / no_answer: 3-way agreement per family on the dev
split (rules tuned there) and the held-out split (labels written before tuning, scored once).

Usage: .venv/bin/python bench/judge_agreement.py [--data ../shared/data/xstest] [--external DIR]
       [--families bench/data/judge_families] [--json OUT.json]"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeadapt.eval.judges.agreement import (  # noqa: E402
    agreement,
    cohen_kappa,
    load_xstest_completions,
    refusal_reading,
    split_of,
    string_match_label,
    two_way,
)
from safeadapt.eval.judges.registry import get_judge  # noqa: E402
from safeadapt.eval.types import JudgeItem  # noqa: E402


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an agreement rate p over n rows."""
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return c - h, c + h


def evaluate_file(path: str, external: bool = False) -> dict:
    rows = load_xstest_completions(path)
    judge = get_judge("refusal")
    t0 = time.perf_counter()
    pred = [
        refusal_reading(j.label)
        for j in judge.judge([JudgeItem(prompt=r["prompt"], response=r["completion"]) for r in rows])
    ]
    secs = time.perf_counter() - t0
    base = [string_match_label(r["completion"]) for r in rows]
    human = [two_way(r["final_label"]) for r in rows]
    split = [split_of(r["id"]) for r in rows]  # external files: same sha256 split (they are tuning material now)
    out: dict = {"file": os.path.basename(path), "n": len(rows), "judge_seconds": secs, "splits": {}, "types": {},
                 "external": external}
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        for s in (split[i], "all"):
            groups[("split", s)].append(i)
            groups[(r["type"], s)].append(i)
    for (key, s), idx in sorted(groups.items()):
        h, p = [human[i] for i in idx], [pred[i] for i in idx]
        acc = agreement(h, p)
        cell = {
            "n": len(idx),
            "refusal_judge": acc,
            "refusal_judge_wilson95": wilson(acc, len(idx)),
            "string_match": agreement(h, [base[i] for i in idx]),
            "refusal_judge_kappa": cohen_kappa(h, p),
            "human_refusal_rate": sum(x == "refusal" for x in h) / len(h),
        }
        (out["splits"] if key == "split" else out["types"].setdefault(key, {}))[s] = cell
    return out


def evaluate_family(path: str, data_dir: str) -> dict:
    """3-way agreement of the refusal judge with the hand labels of one out-of-family file."""
    from safeadapt.eval.judges.agreement import load_family_rows, load_prompts

    rows = [r for r in load_family_rows(path) if r.get("label")]
    prompts = load_prompts(data_dir, [(r["source"], r["row_id"]) for r in rows])
    pred = [
        refusal_reading(j.label)
        for j in get_judge("refusal").judge(
            [JudgeItem(prompt=p, response=r["completion"]) for p, r in zip(prompts, rows)]
        )
    ]
    out: dict = {"file": os.path.basename(path), "n": len(rows), "splits": {}}
    for s in ("dev", "heldout", "all"):
        idx = [i for i, r in enumerate(rows) if s == "all" or r["split"] == s]
        if not idx:
            continue
        h, p = [rows[i]["label"] for i in idx], [pred[i] for i in idx]
        acc = agreement(h, p)
        conf: dict[str, int] = defaultdict(int)
        for a, b in zip(h, p):
            conf[f"{a}->{b}"] += 1
        ref2 = agreement([x == "refusal" for x in h], [x == "refusal" for x in p])
        out["splits"][s] = {"n": len(idx), "refusal_judge": acc, "refusal_judge_wilson95": wilson(acc, len(idx)),
                            "refusal_vs_rest": ref2, "refusal_vs_rest_wilson95": wilson(ref2, len(idx)),
                            "string_match": agreement(h, [string_match_label(rows[i]["completion"]) for i in idx]),
                            "labels": {k: h.count(k) for k in ("refusal", "compliance", "no_answer")},
                            "confusion": dict(sorted(conf.items()))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "xstest"))
    ap.add_argument(
        "--external",
        default=None,
        help="directory of other models' XSTest completions_*.csv (dev rows are tuning material; held-out is clean)",
    )
    ap.add_argument("--families", default=str(Path(__file__).resolve().parent / "data" / "judge_families"),
                    help="directory of labelled out-of-family *.jsonl files ('' to skip)")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.data, "completions_*.csv")))
    if not files:
        sys.exit(f"no completions_*.csv under {args.data}")
    ext_files = sorted(glob.glob(os.path.join(args.external, "completions_*.csv"))) if args.external else []
    if args.external and not ext_files:
        sys.exit(f"no completions_*.csv under {args.external}")
    print(f"XSTest completion files found: {', '.join(os.path.basename(f) for f in files)}")
    results = [evaluate_file(f) for f in files]
    ext = [evaluate_file(f, external=True) for f in ext_files]
    print("\n2-way agreement with human final_label (refusal judge / string-match baseline)")
    print(f"{'file':34s} {'split':8s} {'n':>4s} {'refusal':>8s} {'wilson95':>13s} {'kappa':>6s} {'strmatch':>8s}")
    for r in results:
        for s in ("dev", "heldout", "all"):
            c = r["splits"][s]
            lo, hi = c["refusal_judge_wilson95"]
            print(
                f"{r['file']:34s} {s:8s} {c['n']:4d} {c['refusal_judge']:8.3f} {lo:6.3f}-{hi:5.3f} "
                f"{c['refusal_judge_kappa']:6.3f} {c['string_match']:8.3f}"
            )
    for r in results:
        print(f"\nper prompt type, {r['file']} (refusal judge / string-match; dev | held-out)")
        print(f"{'type':30s} {'n':>3s} {'dev':>6s} {'sm':>6s} | {'n':>3s} {'held':>6s} {'sm':>6s}")
        for t, cells in sorted(r["types"].items()):
            d, h = cells.get("dev"), cells.get("heldout")
            def fmt(c: dict | None) -> str:
                return f"{c['n']:3d} {c['refusal_judge']:6.3f} {c['string_match']:6.3f}" if c \
                    else f"{0:3d} {'-':>6s} {'-':>6s}"

            print(f"{t:30s} {fmt(d)} | {fmt(h)}")
    if ext:
        print("\nexternal files (upstream; their dev rows were used to write cues and fit weights, "
              "held-out 30% is the clean figure)")
        print(
            f"{'file':34s} {'split':8s} {'n':>4s} {'refusal':>8s} {'wilson95':>13s} {'kappa':>6s} {'strmatch':>8s} "
            f"{'human refusal':>13s}"
        )
        for r in ext:
            for s in ("dev", "heldout", "all"):
                c = r["splits"][s]
                lo, hi = c["refusal_judge_wilson95"]
                print(
                    f"{r['file']:34s} {s:8s} {c['n']:4d} {c['refusal_judge']:8.3f} {lo:6.3f}-{hi:5.3f} "
                    f"{c['refusal_judge_kappa']:6.3f} "
                    f"{c['string_match']:8.3f} {c['human_refusal_rate']:13.3f}"
                )
    fam_files = sorted(glob.glob(os.path.join(args.families, "*.jsonl"))) if args.families else []
    fams = [evaluate_family(f, str(Path(args.data).parent)) for f in fam_files]
    if fams:
        print("\nout-of-family completions, 3-way agreement (refusal / compliance / no_answer) with labels by reading")
        print(
            "(3-way: the judge's label; refusal-vs-rest: refusal against compliance or no_answer; strmatch: 2-way "
            "baseline scored 3-way)"
        )
        print(
            f"{'file':26s} {'split':8s} {'n':>4s} {'3-way':>6s} {'wilson95':>13s} {'ref/rest':>8s} {'wilson95':>13s} "
            f"{'strmatch':>8s}  labels r/c/n"
        )
        for r in fams:
            for s, c in r["splits"].items():
                lo, hi = c["refusal_judge_wilson95"]
                lo2, hi2 = c["refusal_vs_rest_wilson95"]
                lab = c["labels"]
                print(
                    f"{r['file']:26s} {s:8s} {c['n']:4d} {c['refusal_judge']:6.3f} {lo:6.3f}-{hi:5.3f} "
                    f"{c['refusal_vs_rest']:8.3f} {lo2:6.3f}-{hi2:5.3f} "
                    f"{c['string_match']:8.3f}  {lab['refusal']}/{lab['compliance']}/{lab['no_answer']}"
                )
        print("\nconfusion on the held-out split (human->judge)")
        for r in fams:
            if "heldout" in r["splits"]:
                print(f"{r['file']:34s} {r['splits']['heldout']['confusion']}")
    for r in results + ext:
        print(f"{r['file']}: judged {r['n']} rows in {r['judge_seconds']:.2f} s")
    if args.json:
        from safeadapt.core.atomic import atomic_write_json
        from safeadapt.core.provenance import provenance, sha256_file

        atomic_write_json(args.json, {"results": results, "external": ext, "families": fams, "provenance": provenance(
            config={"split": "sha256 of prompt id, 70% dev", "external": args.external},
            inputs={f: sha256_file(f) for f in files + ext_files + fam_files})})


if __name__ == "__main__":
    main()
