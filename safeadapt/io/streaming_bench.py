"""Benchmark for tensor streaming: peak RSS of (a) one streaming pass over a ~500 MB checkpoint and
(b) a linear merge of two such checkpoints, reading with `readinto` vs safetensors `safe_open`
(mmap). Each case runs in a fresh subprocess. Run: `python -m safeadapt.io.streaming_bench DIR`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

_CHILD = r"""
import json, os, sys, time
os.environ["SAFEADAPT_NO_PROGRESS"] = "1"
import torch
from safeadapt.io.tensors import open_tensors
kind, mode, root = sys.argv[1], sys.argv[2], sys.argv[3]
def hwm_mb():  # VmHWM is per address space (reset by exec), unlike ru_maxrss which survives exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base_rss = hwm_mb()
t0 = time.perf_counter()
if kind == "pass":
    src = open_tensors(os.path.join(root, "a"), mode=mode)
    total = 0.0
    for k in src.keys():
        total += float(src.get(k).float().sum())
    src.close()
else:
    os.environ["SAFEADAPT_TENSOR_READ"] = mode
    from safeadapt.repair.merge.api import merge
    merge({"merge_method": "linear", "models": [{"model": os.path.join(root, "a"), "parameters": {"weight": 0.5}},
                                                {"model": os.path.join(root, "b"), "parameters": {"weight": 0.5}}]},
          os.path.join(root, f"out-{mode}"), overwrite=True)
print(json.dumps({"kind": kind, "mode": mode, "peak_rss_mb": hwm_mb(), "import_rss_mb": base_rss,
                  "seconds": time.perf_counter() - t0}))
"""


def make_checkpoint(
    path: Path, *, seed: int, vocab: int = 16000, hidden: int = 1024, inter: int = 2816, layers: int = 8
) -> int:
    """Write a LLaMA-shaped random fp32 safetensors checkpoint (~540 MB by default); returns bytes."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    sd = {
        "model.embed_tokens.weight": torch.randn(vocab, hidden, generator=g),
        "lm_head.weight": torch.randn(vocab, hidden, generator=g),
        "model.norm.weight": torch.ones(hidden),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[p + f"self_attn.{n}.weight"] = torch.randn(hidden, hidden, generator=g)
        sd[p + "mlp.gate_proj.weight"] = torch.randn(inter, hidden, generator=g)
        sd[p + "mlp.up_proj.weight"] = torch.randn(inter, hidden, generator=g)
        sd[p + "mlp.down_proj.weight"] = torch.randn(hidden, inter, generator=g)
        sd[p + "input_layernorm.weight"] = torch.ones(hidden)
        sd[p + "post_attention_layernorm.weight"] = torch.ones(hidden)
    save_file(sd, path / "model.safetensors", metadata={"format": "pt"})
    return (path / "model.safetensors").stat().st_size


def main(root: str) -> list[dict]:
    r = Path(root)
    sizes = {}
    for name, seed in (("a", 0), ("b", 1)):
        if not (r / name / "model.safetensors").exists():
            make_checkpoint(r / name, seed=seed)
        sizes[name] = (r / name / "model.safetensors").stat().st_size
    rows = []
    for kind in ("pass", "merge"):
        for mode in ("read", "mmap", "read", "mmap"):  # interleaved twice, to see noise
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, kind, mode, str(r)], capture_output=True, text=True, check=True
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("checkpoint sizes (MB): " + ", ".join(f"{k}={v / 2**20:.0f}" for k, v in sizes.items()))
    print("| case | read mode | peak RSS (MB) | RSS after imports (MB) | seconds |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['kind']} | {row['mode']} | {row['peak_rss_mb']:.0f} | {row['import_rss_mb']:.0f} | "
            f"{row['seconds']:.1f} |"
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join("/tmp", f"safeadapt-stream-bench-{int(time.time())}"))
