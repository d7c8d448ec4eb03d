"""Benchmark the repair engine on the ~134M-parameter seeded Llama checkpoints of bench/_common.py,
side by side in one run:

1. scoring cost (in process, alternating, best of `--repeats`): Wanda norms (hooked forward) vs one
   plain forward pass over the same calibration batches; SNIP (per-sample forward+backward with |g|
   accumulation; whole model, and layer by layer from the checkpoint, score files written) vs the
   same per-sample forward+backward loop on the whole model without scoring;
2. peak RSS and wall time (subprocesses under /usr/bin/time -v) of `safeadapt merge` (task
   arithmetic over the same three checkpoints) vs `safeadapt repair` resta, antidote (magnitude:
   streaming prune, no calibration), antidote (wanda: layer-by-layer calibration + prune),
   set_difference graft (wanda, layer by layer) and set_difference graft (snip, layer by layer:
   forward caching each layer's input, then backward from the top layer down).

    .venv/bin/python bench/repair.py [--dtype bf16] [--n 16] [--seq 128] [--repeats 2] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_125M, ROOT, build_family, merge_config, timed_run, write_yaml  # noqa: E402


def calibration_rows(n: int, seq: int, vocab: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Seeded token rows; the second half of each row is the "response" (labels), the first half -100."""
    import torch

    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        ids = torch.randint(5, vocab, (seq,), generator=g).tolist()
        rows.append((ids, [-100] * (seq // 2) + ids[seq // 2 :]))
    return rows


def bench_scoring(model_dir: Path, n: int, seq: int, repeats: int, batch: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from safeadapt.repair.calibrate import batches, snip_scores, snip_scores_by_layer, wanda_norms, wanda_norms_by_layer
    from safeadapt.repair.merge.config import MergeConfig, ModelEntry
    from safeadapt.repair.merge.inputs import open_inputs

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    rows = calibration_rows(n, seq, model.config.vocab_size)

    def plain_forward() -> None:
        with torch.inference_mode():
            for b in batches(rows, batch, 0):
                model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])

    def per_sample_fwd_bwd() -> None:
        for ids, lab in rows:
            x = torch.tensor([ids])
            model(input_ids=x, attention_mask=torch.ones_like(x), labels=torch.tensor([lab])).loss.backward()
            model.zero_grad(set_to_none=True)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    (inp,) = open_inputs(MergeConfig(merge_method="x", models=[ModelEntry(model=str(model_dir))]), None, False)
    res = {"forward": [], "wanda": [], "wanda_by_layer": [], "fwd_bwd": [], "snip": [], "snip_by_layer": []}
    scratch = tempfile.TemporaryDirectory(prefix="bench-snip-")
    for _ in range(repeats):  # alternate so machine noise hits both sides alike
        res["forward"].append(timed(plain_forward))
        res["wanda"].append(timed(lambda: wanda_norms(model, rows, batch_size=batch)))
        res["wanda_by_layer"].append(timed(lambda: wanda_norms_by_layer(inp, rows, batch_size=batch)))
        res["fwd_bwd"].append(timed(per_sample_fwd_bwd))
        res["snip"].append(timed(lambda: snip_scores(model, rows)))
        res["snip_by_layer"].append(
            timed(lambda: snip_scores_by_layer(inp, rows, Path(scratch.name) / str(len(res["snip"]))))
        )
    scratch.cleanup()
    best = {k: min(v) for k, v in res.items()}
    return {"n": n, "seq": seq, "batch": batch, "seconds": res, "best": best,
            "wanda_over_forward": best["wanda"] / best["forward"],
            "wanda_by_layer_over_forward": best["wanda_by_layer"] / best["forward"],
            "snip_over_fwd_bwd": best["snip"] / best["fwd_bwd"],
            "snip_by_layer_over_fwd_bwd": best["snip_by_layer"] / best["fwd_bwd"]}


def calib_file(path: Path, n: int) -> str:
    # the bench checkpoints have no tokenizer: the repair runs below get one copied in (tiny word-level)
    rows = [{"messages": [{"role": "user", "content": " ".join(f"w{(i * 7 + j) % 40}" for j in range(40))},
                          {"role": "assistant", "content": " ".join(f"w{(i * 3 + j) % 40}" for j in range(60))}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def bench_rss(fam: dict[str, Path], work: Path, n: int) -> dict:
    from safeadapt.io.tiny import tiny_tokenizer

    for k in ("base", "ft1", "ft2"):  # a tokenizer for the calibration pass (ids < 64 exist in any vocab)
        if not (fam[k] / "tokenizer.json").is_file():
            tiny_tokenizer(64).save_pretrained(fam[k])
    aligned, adapted, unaligned = fam["base"], fam["ft1"], fam["ft2"]
    cal = calib_file(work / "cal.jsonl", n)
    jobs = {
        "merge task_arithmetic (3 inputs)": ["merge", write_yaml(merge_config(
            "task_arithmetic", aligned, [(adapted, {"weight": 1.0}), (unaligned, {"weight": -0.5})], dtype="fp32")
            | {"out_dtype": "bfloat16"}, work / "merge.yaml")],
    }
    recipes = {
        "repair resta": {"repair_method": "resta", "parameters": {"gamma": 0.5}},
        "repair antidote magnitude (prune, no calibration)": {
            "repair_method": "antidote",
            "parameters": {"mode": "magnitude"},
        },
        "repair antidote wanda (calibration + prune)": {
            "repair_method": "antidote",
            "calibration": {"safety": cal, "n": n},
        },
        "repair set_difference graft wanda (calibration + graft)": {
            "repair_method": "set_difference",
            "parameters": {"score": "wanda"},
            "calibration": {"safety": cal, "utility": cal, "n": n},
        },
        "repair set_difference graft snip (layer-wise calibration + graft)": {
            "repair_method": "set_difference",
            "parameters": {"score": "snip"},
            "calibration": {"safety": cal, "utility": cal, "n": max(2, n // 4)},
        },
    }
    for name, r in recipes.items():
        rec = {"adapted": str(adapted), "aligned": str(aligned), "unaligned": str(unaligned), "dtype": "float32",
               "out_dtype": "bfloat16", **r}
        if r["repair_method"] == "antidote":
            rec.pop("unaligned")
        if r["repair_method"] in ("antidote", "set_difference"):
            rec.pop("unaligned", None)
        jobs[name] = ["repair", write_yaml(rec, work / f"{len(jobs)}.yaml")]
    out = {}
    # each command runs in a wrapper that records, at exit, its own peak RSS (getrusage SELF: the
    # streaming process) and its reaped children's (the calibration child); /usr/bin/time reports the
    # largest process of the tree
    wrap = ("import atexit, json, resource, sys\n"
            "f = sys.argv.pop(1)\n"
            "atexit.register(lambda: json.dump({'self_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "'children_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, open(f, 'w')))\n"
            "sys.argv[0] = 'safeadapt'\n"
            "from safeadapt.cli import main\n"
            "main()\n")
    env = {"SAFEADAPT_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name, (cmd, cfg) in jobs.items():
        dst = work / f"out-{abs(hash(name))}"
        rf = work / f"rss-{len(out)}.json"
        r = timed_run([sys.executable, "-c", wrap, str(rf), cmd, str(cfg), "--out", str(dst), "--overwrite"], env=env)
        if r.rc != 0:
            raise RuntimeError(f"{name} failed: {r.tail}")
        ru = json.loads(rf.read_text())
        out[name] = {"wall_s": r.wall_s, "max_rss_mb": r.max_rss_mb, "parent_rss_mb": ru["self_kb"] / 1024,
                     "child_rss_mb": ru["children_kb"] / 1024}
    base = out["merge task_arithmetic (3 inputs)"]
    for v in out.values():
        v["rss_over_merge"] = v["max_rss_mb"] / base["max_rss_mb"]
        v["parent_over_merge"] = v["parent_rss_mb"] / base["parent_rss_mb"]
        v["child_over_merge"] = v["child_rss_mb"] / base["parent_rss_mb"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "safeadapt-bench-repair"))
    ap.add_argument("--skip", choices=("scoring", "rss"), default=None)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    os.environ.setdefault("SAFEADAPT_NO_PROGRESS", "1")
    os.environ["SAFEADAPT_CALIBRATE_IN_PROCESS"] = "0"  # the calibration child is what is measured
    fam = build_family(Path(a.root) / a.dtype, BENCH_125M, a.dtype)
    result: dict = {"shape": "BENCH_125M (hidden 768, 12 layers, vocab 32000, ~134M params)", "dtype": a.dtype}
    if a.skip != "scoring":
        result["scoring"] = bench_scoring(fam["ft1"], a.n, a.seq, a.repeats, a.batch)
        s = result["scoring"]
        print(
            f"Wanda / forward = {s['wanda_over_forward']:.3f} (best {s['best']['wanda']:.2f} s vs "
            f"{s['best']['forward']:.2f} s)"
        )
        print(f"Wanda by layer (checkpoint reads included) / forward = {s['wanda_by_layer_over_forward']:.3f}")
        print(
            f"SNIP / per-sample fwd+bwd = {s['snip_over_fwd_bwd']:.3f} (best {s['best']['snip']:.2f} s vs "
            f"{s['best']['fwd_bwd']:.2f} s)"
        )
        print(
            f"SNIP by layer (checkpoint reads, score files) / per-sample fwd+bwd = "
            f"{s['snip_by_layer_over_fwd_bwd']:.3f}"
            f" (best {s['best']['snip_by_layer']:.2f} s)"
        )
    if a.skip != "rss":
        with tempfile.TemporaryDirectory(prefix="bench-repair-") as work:
            result["rss"] = bench_rss(fam, Path(work), a.n)
        for name, v in result["rss"].items():
            print(
                f"{name:58s} wall {v['wall_s']:6.1f} s  peak RSS {v['max_rss_mb']:7.0f} MB  "
                f"({v['rss_over_merge']:.2f}x merge)"
                f"  streaming process {v['parent_rss_mb']:6.0f} MB ({v['parent_over_merge']:.2f}x)"
                f"  calibration child {v['child_rss_mb']:6.0f} MB ({v['child_over_merge']:.2f}x)"
            )
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
