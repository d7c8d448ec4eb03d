"""Shared helpers for the merge benchmarks and the mergekit oracle test: seeded synthetic Llama
checkpoint families (base + "fine-tuned" perturbations), mergekit-style YAML configs, timed
subprocess runs under `/usr/bin/time -v`, plain-read bandwidth, and tensor-by-tensor comparison."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MERGEKIT_PYTHON = ROOT / ".bench-venv-mergekit" / "bin" / "python"
MERGEKIT_SETUP = (  # what .ci/run does
    "python3 -m venv .bench-venv-mergekit && .bench-venv-mergekit/bin/pip install torch==2.13.0 "
    "&& echo torch==2.13.0 > .bench-venv-mergekit/constraints.txt "
    "&& .bench-venv-mergekit/bin/pip install -c .bench-venv-mergekit/constraints.txt mergekit==0.1.5"
)

DTYPE_NAMES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
               "fp16": "float16", "float16": "float16"}


# --------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class LlamaShape:
    hidden: int = 768
    layers: int = 12
    intermediate: int = 2048
    vocab: int = 32000
    heads: int = 12
    kv_heads: int = 12

    def config(self):
        from transformers import LlamaConfig

        return LlamaConfig(
            hidden_size=self.hidden, num_hidden_layers=self.layers, intermediate_size=self.intermediate,
            vocab_size=self.vocab, num_attention_heads=self.heads, num_key_value_heads=self.kv_heads,
            max_position_embeddings=512, tie_word_embeddings=False, architectures=["LlamaForCausalLM"],
        )


TINY = LlamaShape(hidden=64, layers=2, intermediate=160, vocab=512, heads=4, kv_heads=4)
BENCH_125M = LlamaShape()


def _gen(seed: int, name: str, tag: str, shape: Sequence[int]):
    import torch

    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(f"{tag}:{name}".encode())) % (2**63))
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def _state_shapes(shape: LlamaShape) -> dict[str, tuple[int, ...]]:
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(shape.config())
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _save_sharded(state: dict[str, Any], out: Path, config, max_shard_size: str) -> None:
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    split = split_torch_state_dict_into_shards(state, max_shard_size=max_shard_size)
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n].contiguous() for n in names}, str(out / filename), metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                 "weight_map": split.tensor_to_filename}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config.save_pretrained(out)


def build_family(root: Path, shape: LlamaShape, dtype: str, *, n_finetuned: int = 2, seed: int = 0,
                 max_shard_size: str = "200MB", delta_scale: float = 0.2) -> dict[str, Path]:
    """Write `base` and `ft1..ftN` HF checkpoints under root (skipped when already built with the same
    recipe). Base: N(0, 0.02) matrices, ones for norms. ft_i = base + s * (0.6 * shared + 0.8 * own_i)
    with s = delta_scale * 0.02 for matrices and delta_scale * 0.1 for norm vectors, all computed in
    fp32 then cast to `dtype`, so task vectors are partly aligned and partly sign-conflicting."""
    import torch

    dtype = DTYPE_NAMES[dtype]
    names = ["base"] + [f"ft{i + 1}" for i in range(n_finetuned)]
    recipe = {"shape": asdict(shape), "dtype": dtype, "n_finetuned": n_finetuned, "seed": seed,
              "max_shard_size": max_shard_size, "delta_scale": delta_scale, "version": 1}
    stamp = root / "recipe.json"
    paths = {n: root / n for n in names}
    if stamp.is_file() and json.loads(stamp.read_text()) == recipe and all(p.is_dir() for p in paths.values()):
        return paths
    tdtype = getattr(torch, dtype)
    config = shape.config()
    config.dtype = dtype
    states: dict[str, dict[str, Any]] = {n: {} for n in names}
    for tname, tshape in _state_shapes(shape).items():
        is_vec = len(tshape) == 1
        base = torch.ones(tshape) if is_vec else _gen(seed, tname, "base", tshape).mul_(0.02)
        s = delta_scale * (0.1 if is_vec else 0.02)
        shared = _gen(seed, tname, "shared", tshape).mul_(0.6 * s)
        states["base"][tname] = base.to(tdtype)
        for i in range(n_finetuned):
            own = _gen(seed, tname, f"own{i}", tshape).mul_(0.8 * s)
            states[f"ft{i + 1}"][tname] = (base + shared + own).to(tdtype)
    for n in names:
        _save_sharded(states[n], paths[n], config, max_shard_size)
    stamp.write_text(json.dumps(recipe))
    return paths


def safetensors_files(model_dir: Path) -> list[Path]:
    return sorted(Path(model_dir).glob("*.safetensors"))


# --------------------------------------------------------------------------- configs
def merge_config(method: str, base: Path | None, models: Sequence[tuple[Path, dict]], *,
                 dtype: str | None, parameters: dict | None = None) -> dict:
    cfg: dict[str, Any] = {"merge_method": method}
    if base is not None:
        cfg["base_model"] = str(base)
    cfg["models"] = [{"model": str(p), **({"parameters": dict(prm)} if prm else {})} for p, prm in models]
    if parameters:
        cfg["parameters"] = dict(parameters)
    if dtype:
        cfg["dtype"] = DTYPE_NAMES[dtype]
    return cfg


def write_yaml(cfg: dict, path: Path) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --------------------------------------------------------------------------- timing
@dataclass
class RunResult:
    cmd: list[str]
    rc: int
    wall_s: float
    max_rss_mb: float
    user_s: float = 0.0
    sys_s: float = 0.0
    tail: str = ""
    extra: dict = field(default_factory=dict)


def _parse_elapsed(text: str) -> float:
    parts = [float(x) for x in text.strip().split(":")]
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def timed_run(cmd: Sequence[str], *, env: dict | None = None, cwd: Path | None = None,
              timeout: float | None = None, time_file: Path | None = None) -> RunResult:
    """Run cmd under `/usr/bin/time -v`; wall time, peak RSS (of the largest process in the tree as
    reported by wait4/getrusage), user and sys CPU seconds."""
    import tempfile

    tf = Path(time_file) if time_file else Path(tempfile.mkstemp(prefix="timev_", suffix=".txt")[1])
    full = ["/usr/bin/time", "-v", "-o", str(tf), *map(str, cmd)]
    t0 = time.perf_counter()
    proc = subprocess.run(full, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    outer = time.perf_counter() - t0
    text = tf.read_text() if tf.exists() else ""
    if not time_file:
        tf.unlink(missing_ok=True)

    def grab(label: str) -> str | None:
        m = re.search(rf"^\s*{re.escape(label)}:\s*(.+)$", text, re.M)
        return m.group(1) if m else None

    wall = grab("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    rss = grab("Maximum resident set size (kbytes)")
    return RunResult(
        cmd=list(map(str, cmd)), rc=proc.returncode,
        wall_s=_parse_elapsed(wall) if wall else outer,
        max_rss_mb=int(rss) / 1024 if rss else float("nan"),
        user_s=float(grab("User time (seconds)") or 0), sys_s=float(grab("System time (seconds)") or 0),
        tail=(proc.stdout[-1500:] + proc.stderr[-2500:]),
    )


def read_files(paths: Iterable[Path], chunk: int = 16 << 20) -> tuple[int, float]:
    """Plain sequential read of every file (the physical floor of a streaming merge). Returns
    (bytes, seconds)."""
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while True:
                n = f.readinto(view)
                if not n:
                    break
                total += n
    return total, time.perf_counter() - t0


# --------------------------------------------------------------------------- comparison
def _tensor_index(model_dir: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    from safetensors import safe_open

    for f in safetensors_files(model_dir):
        with safe_open(str(f), framework="pt") as h:
            for k in h.keys():
                out[k] = f
    return out


def compare_dirs(a: Path, b: Path) -> dict:
    """Compare every tensor of two safetensors model dirs. Returns max abs diff over all tensors
    (computed in float64), the worst tensor, counts of differing tensors/elements, and name/dtype
    mismatches."""
    from safetensors import safe_open

    ia, ib = _tensor_index(a), _tensor_index(b)
    only_a, only_b = sorted(set(ia) - set(ib)), sorted(set(ib) - set(ia))
    res: dict[str, Any] = {"n_tensors": len(set(ia) & set(ib)), "only_a": only_a, "only_b": only_b,
                           "dtype_mismatch": [], "shape_mismatch": [], "max_abs": 0.0, "worst": None,
                           "n_diff_tensors": 0, "n_diff_elems": 0, "n_elems": 0, "max_rel_to_absmax": 0.0}
    for name in sorted(set(ia) & set(ib)):
        with safe_open(str(ia[name]), framework="pt") as ha, safe_open(str(ib[name]), framework="pt") as hb:
            ta, tb = ha.get_tensor(name), hb.get_tensor(name)
        if ta.dtype != tb.dtype:
            res["dtype_mismatch"].append(f"{name}: {ta.dtype} vs {tb.dtype}")
        if ta.shape != tb.shape:
            res["shape_mismatch"].append(name)
            continue
        d = (ta.double() - tb.double()).abs()
        m = float(d.max()) if d.numel() else 0.0
        nd = int((d > 0).sum())
        res["n_elems"] += d.numel()
        if nd:
            res["n_diff_tensors"] += 1
            res["n_diff_elems"] += nd
        if m > res["max_abs"]:
            res["max_abs"], res["worst"] = m, name
            scale = float(ta.double().abs().max()) or 1.0
            res["max_rel_to_absmax"] = max(res["max_rel_to_absmax"], m / scale)
    res["identical"] = (not only_a and not only_b and not res["dtype_mismatch"] and not res["shape_mismatch"]
                        and res["max_abs"] == 0.0)
    return res


def delta_stats(out_dir: Path, base_dir: Path) -> dict:
    """Distribution of the merged task vector (out - base) over all tensors: fraction of elements
    changed, and mean / std / mean |.| of the changed entries (float64)."""
    from safetensors import safe_open

    io_, ib = _tensor_index(out_dir), _tensor_index(base_dir)
    n = kept = 0
    s1 = s2 = sa = 0.0
    for name in sorted(set(io_) & set(ib)):
        with safe_open(str(io_[name]), framework="pt") as ho, safe_open(str(ib[name]), framework="pt") as hb:
            d = ho.get_tensor(name).double() - hb.get_tensor(name).double()
        nz = d[d != 0]
        n += d.numel()
        kept += nz.numel()
        s1 += float(nz.sum())
        s2 += float((nz * nz).sum())
        sa += float(nz.abs().sum())
    mean = s1 / kept if kept else 0.0
    return {"kept_frac": kept / n if n else 0.0, "mean": mean, "mean_abs": sa / kept if kept else 0.0,
            "std": max(s2 / kept - mean * mean, 0.0) ** 0.5 if kept else 0.0, "n": n}


# --------------------------------------------------------------------------- mergekit driver
# One process, many merges (used by the oracle test so mergekit's ~10 s import is paid once).
MERGEKIT_DRIVER = r"""
import json, sys, yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions
jobs = json.loads(sys.argv[1])
for job in jobs:
    cfg = MergeConfiguration.model_validate(yaml.safe_load(open(job["config"])))
    opts = MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True,
                        random_seed=job.get("seed"), device="cpu")
    run_merge(cfg, job["out"], options=opts)
print("ok", len(jobs))
"""


def mergekit_available(python: Path | str = DEFAULT_MERGEKIT_PYTHON) -> str | None:
    """None when `python` can import mergekit, else the reason it cannot."""
    p = Path(python)
    if not p.exists():
        return f"mergekit venv python {p} is absent; set it up with: {MERGEKIT_SETUP}"
    r = subprocess.run([str(p), "-c", "import mergekit.merge"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"{p} cannot import mergekit: {r.stderr.strip().splitlines()[-1:]}"
    return None


def mergekit_cli(python: Path | str) -> Path:
    return Path(python).parent / "mergekit-yaml"


def run_mergekit_batch(python: Path | str, jobs: list[dict], timeout: float = 600) -> None:
    r = subprocess.run([str(python), "-c", MERGEKIT_DRIVER, json.dumps(jobs)], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"mergekit failed (rc={r.returncode}):\n{r.stderr[-4000:]}")


def safeadapt_cli() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "safeadapt"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "safeadapt.cli"]
