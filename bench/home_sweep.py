"""Why the demo's home setting resists the pruning and mixing repairs: run the miniature-world study
with the user's harmful fine-tune (`harmful_ft`) made another way (learning rate, LoRA, world width)
and one-off `hx:` stages beside the demo's home repairs, then print each model's rates.

The `hx:` stages: the interpolation aligned + t * (harmful_ft - aligned) for t in 0.2 / 0.4 / 0.6 /
0.8 (how much of the fine-tune's delta it takes to break safety), RESTA at small gamma, Antidote
`prune: delta` at high ratios and its full-fine-tuning mode on q/k/v only, grafting at larger q, and
SafeMERGE with a safety-tuned LLM (the paper's safety model) instead of the aligned one.

    .venv/bin/python bench/home_sweep.py --out DIR [--seed 0] [--lr 1e-4] [--lora] [--hidden 256]

DIR is a study directory: stages that do not change are reused, so sweeps over one world share it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "safeadapt" / "world" / "demo_study.yaml"
FT_OPTIONS = ('options: {lr: "${llm_align_lr}", max_steps: "${llm_align_steps}", batch_size: "${batch}", '
              'epochs: 1, warmup_ratio: 0.0, threads: 1}')

SWEEP = """\
  safety_llm:
    kind: sft
    description: a safety fine-tune of the aligned LLM on the world's refusals (SafeMERGE's safety model)
    inputs: {model: llm, data: repair_data}
    params:
      data_file: refusals.jsonl
      options: {lr: 1.0e-3, max_steps: 60, batch_size: 16, warmup_ratio: 0.0, threads: 1}
  "hx:lin-${t}":
    kind: merge
    matrix: [{t: 0.2, u: 0.8}, {t: 0.4, u: 0.6}, {t: 0.6, u: 0.4}, {t: 0.8, u: 0.2}]
    inputs: {a: harmful_ft, b: llm}
    params: {method: linear, models: [a, b], weights: {a: "${t}", b: "${u}"}, tokenizer: b}
  "hx:resta-${g}":
    kind: repair
    matrix: {g: [0.1, 0.2, 0.25, 0.3]}
    inputs: {adapted: harmful_ft, aligned: llm, unaligned: unaligned}
    params: {method: resta, parameters: {gamma: "${g}"}}
  "hx:antidote-delta-${r}":
    kind: repair
    matrix: {r: [0.5, 0.8]}
    inputs: {adapted: harmful_ft, aligned: llm, data: repair_data}
    params: {method: antidote, parameters: {ratio: "${r}", prune: delta},
             calibration: {safety: "input:data/harmful.jsonl", n: 64}}
  "hx:antidote-qkv-${r}":
    kind: repair
    matrix: {r: [0.05, 0.1]}
    inputs: {adapted: harmful_ft, aligned: llm, data: repair_data}
    params: {method: antidote, parameters: {ratio: "${r}", prune: weight}, filters: [q_proj, k_proj, v_proj],
             calibration: {safety: "input:data/harmful.jsonl", n: 64}}
  "hx:graft-${q}":
    kind: repair
    matrix: {q: [0.3, 0.5]}
    inputs: {adapted: harmful_ft, aligned: llm, data: repair_data}
    params: {method: set_difference, parameters: {score: snip, p: 0.1, q: "${q}", action: graft},
             calibration: {safety: "input:data/refusals.jsonl", utility: "input:data/utility.jsonl", n: 64}}
  "hx:safemerge-safety_llm":
    kind: repair
    inputs: {adapted: harmful_ft, aligned: llm, safety: safety_llm}
    params: {method: safemerge, parameters: {threshold: 0.35}, unaligned: "input:aligned/pretrained"}
"""
SWEEP_ROLES = ["safety_llm", "hx:lin-0.2", "hx:lin-0.4", "hx:lin-0.6", "hx:lin-0.8", "hx:resta-0.1", "hx:resta-0.2",
               "hx:resta-0.25", "hx:resta-0.3", "hx:antidote-delta-0.5", "hx:antidote-delta-0.8",
               "hx:antidote-qkv-0.05", "hx:antidote-qkv-0.1", "hx:graft-0.3", "hx:graft-0.5", "hx:safemerge-safety_llm"]


def study_text(lr: float | None, lora: bool) -> str:
    """The demo study with harmful_ft's options replaced and the sweep stages and evals added."""
    s = DEMO.read_text()
    ft = "      data_file: mix.jsonl\n      " + FT_OPTIONS
    if ft not in s:
        raise SystemExit(f"{DEMO}: harmful_ft's options changed; update bench/home_sweep.py")
    opts = FT_OPTIONS
    if lr is not None:
        opts = opts.replace('lr: "${llm_align_lr}"', f"lr: {lr}")
    if lora:
        opts = opts.replace("options: {", "options: {lora: true, lora_r: 8, lora_alpha: 16, ")
    s = s.replace(ft, "      data_file: mix.jsonl\n      " + opts, 1)
    anchor = '  "eval:${role}":\n'
    s = s.replace(anchor, SWEEP + anchor, 1)
    last = '      - {role: "home:somf-30", model: "home:somf-30"}\n'
    evals = "".join(f'      - {{role: "{r}", model: "{r}"}}\n' for r in SWEEP_ROLES)
    return s.replace(last, last + evals, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=None, help="harmful_ft's learning rate (default: the demo's)")
    ap.add_argument("--lora", action="store_true", help="harmful_ft as a LoRA fine-tune (r 8, alpha 16)")
    ap.add_argument("--hidden", type=int, default=None, help="world LLM width (default: the demo's 128)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    study = a.out / "home_sweep.yaml"
    study.write_text(study_text(a.lr, a.lora))
    cmd = [sys.executable, "-m", "safeadapt", "run", str(study), "--out", str(a.out), "--seed", str(a.seed),
           "--jobs", "2"]
    for only in ("eval:aligned", "eval:harmful_ft", "eval:home:*", "eval:hx:*", "eval:safety_llm"):
        cmd += ["--only", only]
    if a.hidden:
        cmd += ["--set", f"llm_hidden={a.hidden}"]
    rc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode  # its error line reaches stderr
    if rc:
        raise SystemExit(f"safeadapt run {study} failed (exit {rc})")
    print(f"seed {a.seed}, harmful_ft lr {a.lr or 'demo'}{', LoRA' if a.lora else ''}, width {a.hidden or 128}")
    print("| model | text ASR | jailbreak ASR | over-refusal | helpfulness |\n|---|---|---|---|---|")
    for st in json.loads((a.out / "study.json").read_text())["stages"]:
        f = a.out / st["dir"] / "world_metrics.json"
        if st["kind"] == "world.eval" and f.exists():
            w = json.loads(f.read_text())
            m, c = w["metrics"], lambda k: "{k}/{n}".format(**w["metrics"][f"{k}_count"])
            print(f"| {w['role']} | {m['text_asr']:.2f} ({c('text_asr')}) | "
                  f"{m['jailbreak_asr']:.2f} ({c('jailbreak_asr')}) | {m['over_refusal']:.2f} | "
                  f"{m['helpfulness']:.2f} ({c('helpfulness')}) |")


if __name__ == "__main__":
    main()
