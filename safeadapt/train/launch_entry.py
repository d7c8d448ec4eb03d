"""Entry point for multi-process training under `accelerate launch` (or torchrun):

    accelerate launch --multi_gpu --num_processes 2 -m safeadapt.train.launch_entry JOB.json

(`--multi_gpu` starts the processes through torchrun; without CUDA each one falls back to CPU and
the gloo backend. `--cpu` alone runs a single process unless an mpirun hostfile is given.)

JOB.json: {"kind": "sft" | "dpo" | "attack", "model": ..., "data": "rows.jsonl", "out": ...,
"options": {...SFTOptions / DPOOptions fields...}, "recipe": "aoa", "n_examples": N, "system_prompt": S
(attack only)}. Every rank
trains its data shard; only rank 0 writes the checkpoint. Each rank prints one JSON status line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def run(job_path: str) -> Path:
    from safeadapt.core.errors import SafeAdaptError

    job_file = Path(job_path)
    if not job_file.is_file():
        raise SafeAdaptError(f"job file not found: {job_file}")
    try:
        job = json.loads(job_file.read_text())
    except json.JSONDecodeError as e:
        raise SafeAdaptError(f"{job_file}:{e.lineno}: invalid JSON: {e.msg}") from None
    kind = job.get("kind")
    for k in ("model", "data", "out"):
        if k not in job:
            raise SafeAdaptError(f"{job_file}: missing {k!r}")
    data = Path(job["data"])
    if not data.is_absolute():
        data = job_file.parent / data
    opts = job.get("options") or {}
    if kind in ("sft", "dpo"):
        from safeadapt.train.commands import read_training_rows
        from safeadapt.train.dpo import DPOOptions, dpo
        from safeadapt.train.sft import SFTOptions, sft

        train, options = (sft, SFTOptions) if kind == "sft" else (dpo, DPOOptions)
        return train(
            job["model"],
            read_training_rows(data),
            job["out"],
            options(**opts),
            base_dir=data.parent,
            source=str(data),
        )
    if kind == "attack":
        from safeadapt.train.attack import attack
        from safeadapt.train.sft import SFTOptions

        return attack(job["model"], job.get("recipe", ""), data, job["out"], SFTOptions(**opts) if opts else None,
                      n_examples=job.get("n_examples"), system_prompt=job.get("system_prompt"))
    raise SafeAdaptError(f"{job_file}: unknown kind {kind!r} (sft, dpo, attack)")


def main(argv: list[str] | None = None) -> int:
    from safeadapt.core.errors import SafeAdaptError

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m safeadapt.train.launch_entry JOB.json", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        out = run(argv[0])
    except SafeAdaptError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    print(json.dumps({"rank": rank, "world_size": world, "out": str(out)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
