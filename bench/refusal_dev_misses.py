"""Print the offline `refusal` judge's misses (refusal vs not) on the DEV split only: shipped XSTest
completion files, other models' XSTest files (--external) and the labelled out-of-family files. The
held-out rows are dropped as each file is read, so cue writing never sees them.

Usage: .venv/bin/python bench/refusal_dev_misses.py [--data ../shared/data/xstest] [--external DIR]
       [--families bench/data/judge_families] [--file SUBSTRING] [--width 400]"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeadapt.eval.judges.agreement import refusal_fit_rows  # noqa: E402
from safeadapt.eval.judges.refusal import RefusalJudge  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "xstest"))
    ap.add_argument("--external", default=None)
    ap.add_argument("--families", default=str(Path(__file__).resolve().parent / "data" / "judge_families"))
    ap.add_argument("--file", default="", help="only files whose name contains this")
    ap.add_argument("--width", type=int, default=400)
    ap.add_argument("--quiet", action="store_true", help="counts only")
    args = ap.parse_args()
    rows = [
        r
        for r in refusal_fit_rows(args.data, args.families or None, split="dev", external_dir=args.external)
        if args.file in str(r["file"])
    ]
    judge = RefusalJudge()
    n, miss = Counter(), Counter()
    for r in rows:
        s, ev = judge.score_one(str(r["prompt"]), str(r["completion"]))
        pred = int(s >= judge.threshold)
        n[r["file"]] += 1
        if pred == r["refusal"]:
            continue
        miss[r["file"]] += 1
        if args.quiet:
            continue
        top = ", ".join(f"{k}({w:+.1f})" for k, w in sorted(ev, key=lambda e: -abs(e[1]))[:6])
        text = " ".join(str(r["completion"]).split())
        print(f"--- {r['file']} {r['group']} human={'refusal' if r['refusal'] else 'answer'} P={s:.2f} [{top}]")
        print(f"  Q: {' '.join(str(r['prompt']).split())[:160]}")
        print(f"  A: {text[:args.width]}")
    for f in sorted(n):
        print(f"{f:34s} dev n={n[f]:4d} misses={miss[f]:3d} agreement={1 - miss[f] / n[f]:.3f}")


if __name__ == "__main__":
    main()
