"""Training overhead benchmark: per-step cost of `safeadapt.train.sft` (TRL SFTTrainer with our
CPU defaults) vs a bare torch loop on the same ~1M-parameter Llama and batches, and vs TRL's own
defaults (bf16 autocast, gradient checkpointing, logging every 10 steps). Also times the fixed
per-run cost (load + tokenise + trainer construction + save).

    .venv/bin/python bench/training.py [--steps 100] [--batch 32] [--seq 64] [--out bench/_work/training.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SAFEADAPT_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = "red green blue square circle what colour shape count the image is a one two three four please".split()


def make_rows(n: int, seq: int, seed: int = 0) -> list[dict]:
    import random

    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        q = " ".join(rnd.choice(WORDS) for _ in range(seq // 3))
        a = " ".join(rnd.choice(WORDS) for _ in range(seq))
        rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    return rows


def bare_loop(model_dir: Path, rows: list[dict], steps: int, batch: int, seq: int, lr: float) -> dict:
    """The same model, tokenisation and optimiser (AdamW, warmup 3% + cosine, clip 1.0), no Trainer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    from safeadapt.train.chat import tokenize_chat_rows

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).train()
    cols, _ = tokenize_chat_rows(tok, [r["messages"] for r in rows], seq)
    ids = [torch.tensor(x) for x in cols["input_ids"]]
    labs = [torch.tensor(x) for x in cols["labels"]]
    pad = tok.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(0.03 * steps), steps)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(ids), generator=g).tolist()
    t0, c0 = time.perf_counter(), time.process_time()
    pos = 0
    for _ in range(steps):
        if pos + batch > len(order):
            order = torch.randperm(len(ids), generator=g).tolist()
            pos = 0
        idx = order[pos : pos + batch]
        pos += batch
        x = torch.nn.utils.rnn.pad_sequence([ids[i] for i in idx], batch_first=True, padding_value=pad)
        y = torch.nn.utils.rnn.pad_sequence([labs[i] for i in idx], batch_first=True, padding_value=-100)
        out = model(input_ids=x, attention_mask=(x != pad).long(), labels=y)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"train_s": dt, "train_cpu_s": cpu, "ms_per_step_cpu": 1000 * cpu / steps, "steps_per_s": steps / dt,
            "final_loss": float(out.loss)}


def via_sft(model_dir: Path, rows: list[dict], steps: int, batch: int, seq: int, lr: float, **kw) -> dict:
    from safeadapt.train.sft import SFTOptions, sft

    with tempfile.TemporaryDirectory() as td:
        t0 = time.perf_counter()
        out = sft(model_dir, rows, Path(td) / "out",
                  SFTOptions(max_steps=steps, batch_size=batch, max_length=seq, lr=lr, **kw))
        total = time.perf_counter() - t0
        rec = json.loads((out / "safeadapt_train.json").read_text())
    t = rec["timings_s"]
    losses = [h["loss"] for h in rec["train"]["log_history"] if "loss" in h]
    return {"train_s": t["train"], "train_cpu_s": t["train_cpu"], "ms_per_step_cpu": 1000 * t["train_cpu"] / steps,
            "steps_per_s": steps / t["train"], "total_s": total,
            "fixed_s": total - t["train"], "phases_s": t, "final_logged_loss": losses[-1] if losses else None}


def vision_bench(root: Path, llm_dir: Path, steps: int, batch: int) -> dict:
    """Vision SFT (LLaVA = the bench LLM + a 32px CLIP tower, 16 image tokens) vs the cost of TRL's
    vision collator alone (chat template + image processor + <image> expansion) on one batch."""
    import copy

    from _tiny_train import build_tower, solid
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from safeadapt.train.chat import normalise_chat_rows
    from safeadapt.train.vl import build_llava

    vlm = build_llava(llm_dir, build_tower(root / "tower", "clip"), root / "llava")
    cols = ["red", "green", "blue"]
    rows = [{"messages": [{"role": "user", "content": "<image>\nWhat colour is the square in this picture?"},
                          {"role": "assistant", "content": f"It is {cols[i % 3]}."}], "images": [solid(cols[i % 3])]}
            for i in range(batch * 8)]
    run = via_sft(vlm, rows, steps, batch, 2048, 1e-3)
    proc = AutoProcessor.from_pretrained(str(vlm))
    col = DataCollatorForVisionLanguageModeling(processor=proc, completion_only_loss=True, max_length=2048)
    norm = normalise_chat_rows(rows[:batch])
    ex = [{"prompt": r["messages"][:1], "completion": r["messages"][1:], "images": r["images"]} for r in norm]
    c0 = time.process_time()
    for _ in range(10):
        col(copy.deepcopy(ex))
    return {"sft_vision": run, "collator_ms_per_batch_cpu": 100 * (time.process_time() - c0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vision", action="store_true", help="also time vision SFT and TRL's vision collator")
    ap.add_argument("--modes", default="bare_torch,sft_ours,sft_ours_log_every_step,sft_trl_defaults")
    ap.add_argument("--out", default=str(ROOT / "bench" / "_work" / "training.json"))
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    from _tiny import build_tiny_llama

    with tempfile.TemporaryDirectory() as td:
        mdir = build_tiny_llama(Path(td) / "m", hidden=a.hidden, layers=a.layers, heads=4, intermediate=4 * a.hidden)
        from transformers import AutoModelForCausalLM

        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(str(mdir)).parameters())
        rows = make_rows(a.batch * 8, a.seq)
        lr = 1e-3
        res: dict = {"params": n_params, "steps": a.steps, "batch": a.batch, "seq": a.seq, "threads": a.threads}
        # warm-up run (imports, allocator) not recorded
        via_sft(mdir, rows, 5, a.batch, a.seq, lr)
        modes = {
            "bare_torch": lambda: bare_loop(mdir, rows, a.steps, a.batch, a.seq, lr),
            "sft_ours": lambda: via_sft(mdir, rows, a.steps, a.batch, a.seq, lr),
            "sft_ours_log_every_step": lambda: via_sft(mdir, rows, a.steps, a.batch, a.seq, lr, logging_steps=1),
            "sft_trl_defaults": lambda: via_sft(mdir, rows, a.steps, a.batch, a.seq, lr, trl_defaults=True),
            "sft_ours_bf16": lambda: via_sft(mdir, rows, a.steps, a.batch, a.seq, lr, mixed_precision="bf16"),
        }
        modes = {k: v for k, v in modes.items() if k in a.modes.split(",")}
        runs: dict[str, list[dict]] = {k: [] for k in modes}
        for _ in range(a.repeats):  # interleaved, so contention hits every mode alike
            for k, fn in modes.items():
                runs[k].append(fn())
        for k, rs in runs.items():
            best = min(rs, key=lambda r: r["ms_per_step_cpu"])
            res[k] = dict(best, runs_ms_per_step_cpu=[round(r["ms_per_step_cpu"], 2) for r in rs],
                          runs_steps_per_s_wall=[round(r["steps_per_s"], 3) for r in rs])
        if a.vision:
            res["vision"] = vision_bench(Path(td), mdir, a.steps, a.batch)
    ms = {k: res[k]["ms_per_step_cpu"] for k in modes}
    res["ratios"] = {}
    if "bare_torch" in ms and "sft_ours" in ms:
        res["ratios"]["ours_vs_bare_cpu_time"] = ms["sft_ours"] / ms["bare_torch"]
        res["ratios"]["trl_overhead_ms_per_step_cpu"] = ms["sft_ours"] - ms["bare_torch"]
    if "sft_trl_defaults" in ms and "sft_ours" in ms:
        res["ratios"]["trl_defaults_vs_ours_cpu_time"] = ms["sft_trl_defaults"] / ms["sft_ours"]
    if "sft_ours_bf16" in ms and "sft_ours" in ms:
        res["ratios"]["bf16_autocast_vs_fp32_cpu_time"] = ms["sft_ours_bf16"] / ms["sft_ours"]
    if "sft_ours_log_every_step" in ms and "sft_ours" in ms:
        res["ratios"]["log_every_step_cost_ms_cpu"] = ms["sft_ours_log_every_step"] - ms["sft_ours"]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
