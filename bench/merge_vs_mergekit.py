"""Benchmark `safeadapt merge` against mergekit (`mergekit-yaml`, LGPL-3.0, a peer and a correctness
oracle, never a dependency) on seeded ~125M-parameter Llama checkpoints: wall time and peak RSS under
`/usr/bin/time -v`, tensor-by-tensor max |diff| of the outputs, and the plain-read floor.

    .venv/bin/python bench/merge_vs_mergekit.py            # full run (bf16 + fp32, 4 methods, 2 repeats)
    .venv/bin/python bench/merge_vs_mergekit.py --dtypes bf16 --methods ties --repeats 1
    # two single-tool runs (e.g. concurrently), then one table comparing their kept outputs:
    .venv/bin/python bench/merge_vs_mergekit.py --tools mergekit --keep-outputs --json-out mk.json
    .venv/bin/python bench/merge_vs_mergekit.py --tools safeadapt --keep-outputs --json-out sa.json
    .venv/bin/python bench/merge_vs_mergekit.py --combine sa.json mk.json

mergekit runs from its own venv (`--mergekit-python`, default .bench-venv-mergekit/bin/python); set it
up with the command in docs/benchmarks.md. Without it, the mergekit columns are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_125M,
    DEFAULT_MERGEKIT_PYTHON,
    ROOT,
    LlamaShape,
    build_family,
    compare_dirs,
    delta_stats,
    merge_config,
    mergekit_available,
    mergekit_cli,
    read_files,
    safeadapt_cli,
    safetensors_files,
    timed_run,
    write_yaml,
)

METHODS = ("linear", "task_arithmetic", "ties", "dare_ties")
EXACT_METHODS = {"linear", "task_arithmetic", "ties"}


def method_config(method: str, fam: dict[str, Path], dtype: str) -> dict:
    """The same config is handed to both tools. Weights/densities are deliberately uneven so that
    normalisation and per-model density both matter."""
    base, fts = fam["base"], [fam[k] for k in sorted(fam) if k != "base"]
    ws = [0.7, 0.5, 0.4, 0.3][: len(fts)]
    ds = [0.5, 0.3, 0.4, 0.6][: len(fts)]
    if method == "linear":
        # mergekit's linear requires a weight for every input, including an implicit base, so the
        # base goes in `models` and no base_model is given.
        lw = [0.2] + [0.8 / len(fts)] * len(fts)
        return merge_config("linear", None, [(p, {"weight": w}) for p, w in zip([base, *fts], lw)], dtype=dtype)
    if method == "task_arithmetic":
        return merge_config(method, base, [(p, {"weight": w}) for p, w in zip(fts, ws)], dtype=dtype)
    return merge_config(method, base, [(p, {"weight": w, "density": d}) for p, w, d in zip(fts, ws, ds)],
                        dtype=dtype)


def input_files(cfg: dict) -> list[Path]:
    dirs = [m["model"] for m in cfg["models"]] + ([cfg["base_model"]] if "base_model" in cfg else [])
    out: list[Path] = []
    for d in dict.fromkeys(dirs):
        out.extend(safetensors_files(Path(d)))
    return out


def tool_commands(tool: str, cfg_path: Path, out: Path, args) -> list[str]:
    if tool == "safeadapt":
        cmd = [*safeadapt_cli(), "merge", str(cfg_path), "--out", str(out)]
        if args.safeadapt_seed_flag:
            cmd += [args.safeadapt_seed_flag, str(args.seed)]
        return cmd + list(args.safeadapt_extra)
    return [str(mergekit_cli(args.mergekit_python)), str(cfg_path), str(out), "--no-copy-tokenizer",
            "--no-write-model-card", "--quiet", "--device", "cpu", "--random-seed", str(args.seed),
            *args.mergekit_extra]


def safeadapt_ready() -> str | None:
    r = subprocess.run([*safeadapt_cli(), "merge", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`safeadapt merge --help` failed (rc={r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}"
    return None


def detect_seed_flag() -> str | None:
    r = subprocess.run([*safeadapt_cli(), "merge", "--help"], capture_output=True, text=True)
    return "--seed" if "--seed" in r.stdout else None


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def print_report(result: dict, out_json: Path) -> None:
    """Markdown table of a results.json (also used by --report-only)."""
    facts, rows = result["facts"], result["rows"]
    load0 = facts["loadavg_start"]
    print()
    print(f"machine: {facts['cpus']} cpus, loadavg start {load0[0]:.1f} end {facts['loadavg_end'][0]:.1f};"
          f" CLI startup (--help) s: {result['startup_s']}")
    hdr = ("| dtype | method | input GB | read floor s | safeadapt s | mergekit s | time ratio | cpu-s ratio"
           " | safeadapt RSS MB | mergekit RSS MB | RSS ratio | safeadapt / floor | max abs diff |")
    print(hdr)
    print("|" + "|".join(["---"] * (hdr.count("|") - 1)) + "|")
    for row in rows:
        sa, mk = row.get("safeadapt"), row.get("mergekit")
        cpu_ratio = sa["cpu_s"] / mk["cpu_s"] if sa and mk else None
        if "compare" in row:
            c = row["compare"]
            diff = f"{c['max_abs']:.3g}" + ("" if c["identical"] else
                                             f" ({c['n_diff_tensors']}/{c['n_tensors']} tensors, "
                                             f"{c['n_diff_elems'] / max(c['n_elems'], 1):.1%} elems)")
        elif "delta_stats" in row:
            s, m = row["delta_stats"]["safeadapt"], row["delta_stats"]["mergekit"]
            diff = (f"changed {s['kept_frac']:.4f} vs {m['kept_frac']:.4f}; std {s['std']:.4g} vs {m['std']:.4g};"
                    f" mean abs {s['mean_abs']:.4g} vs {m['mean_abs']:.4g}")
        else:
            diff = "n/a"
        print(f"| {row['dtype']} | {row['method']} | {row['input_bytes'] / 1e9:.2f} | {row['read_s']:.2f}"
              f" | {fmt(sa and sa['wall_s'])} | {fmt(mk and mk['wall_s'])} | {fmt(row.get('time_ratio'))}"
              f" | {fmt(cpu_ratio)} | {fmt(sa and sa['rss_mb'], '.0f')} | {fmt(mk and mk['rss_mb'], '.0f')}"
              f" | {fmt(row.get('rss_ratio'))} | {fmt(row.get('sa_over_floor'), '.1f')} | {diff} |")
    print(f"\nresults: {out_json}")
    for r in rows:
        if "compare" in r and not r["compare"]["identical"]:
            c = r["compare"]
            print(f"DIFF {r['dtype']} {r['method']}: max {c['max_abs']:.3g} at {c['worst']}; "
                  f"only_a={c['only_a'][:3]} only_b={c['only_b'][:3]} dtype_mismatch={c['dtype_mismatch'][:3]}")


def combine(sa_json: Path, mk_json: Path, work: Path, json_out: Path | None) -> int:
    """Join a safeadapt-only and a mergekit-only run (both with --keep-outputs, same work dir): the
    two tools then ran concurrently rather than alternating, so wall times carry each other's load;
    CPU seconds and RSS are per process."""
    sa, mk = json.loads(sa_json.read_text()), json.loads(mk_json.read_text())
    mk_rows = {(r["dtype"], r["method"]): r for r in mk["rows"]}
    rows = []
    for r in sa["rows"]:
        m = mk_rows.get((r["dtype"], r["method"]))
        if m is None or not r.get("safeadapt") or not m.get("mergekit"):
            continue
        row = {**r, "mergekit": m["mergekit"]}
        row["time_ratio"] = r["safeadapt"]["wall_s"] / m["mergekit"]["wall_s"]
        row["rss_ratio"] = r["safeadapt"]["rss_mb"] / m["mergekit"]["rss_mb"]
        outs = {t: work / "out" / r["dtype"] / r["method"] / t for t in ("safeadapt", "mergekit")}
        if all(p.is_dir() for p in outs.values()):
            if r["method"] in EXACT_METHODS:
                row["compare"] = compare_dirs(outs["safeadapt"], outs["mergekit"])
            else:
                base = work / "models" / r["dtype"] / "base"
                row["delta_stats"] = {t: delta_stats(outs[t], base) for t in outs}
        rows.append(row)
    facts = {**sa["facts"], "loadavg_end": sa["facts"]["loadavg_end"], "combined_from": [str(sa_json), str(mk_json)]}
    result = {"facts": facts, "startup_s": {**mk["startup_s"], **sa["startup_s"]}, "shape": sa["shape"],
              "argv": [sa["argv"], mk["argv"]], "rows": rows}
    out_json = json_out or work / "results_combined.json"
    out_json.write_text(json.dumps(result, indent=2, default=str))
    print_report(result, out_json)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "_work")
    ap.add_argument("--mergekit-python", type=Path, default=DEFAULT_MERGEKIT_PYTHON)
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--repeats", type=int, default=2, help="runs per tool, alternating order; min is reported")
    ap.add_argument("--n-finetuned", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=BENCH_125M.hidden)
    ap.add_argument("--layers", type=int, default=BENCH_125M.layers)
    ap.add_argument("--intermediate", type=int, default=BENCH_125M.intermediate)
    ap.add_argument("--vocab", type=int, default=BENCH_125M.vocab)
    ap.add_argument("--heads", type=int, default=BENCH_125M.heads)
    ap.add_argument("--shard-size", default="200MB")
    ap.add_argument("--tools", default="safeadapt,mergekit")
    ap.add_argument("--safeadapt-extra", nargs="*", default=[], help="extra args for `safeadapt merge`")
    ap.add_argument("--mergekit-extra", nargs="*", default=[], help="extra args for mergekit-yaml")
    ap.add_argument("--json-out", type=Path, default=None, help="default: WORK_DIR/results.json")
    ap.add_argument("--keep-outputs", action="store_true")
    ap.add_argument("--report-only", type=Path, default=None, help="print the table of an earlier results.json")
    ap.add_argument(
        "--combine",
        type=Path,
        nargs=2,
        metavar=("SAFEADAPT_JSON", "MERGEKIT_JSON"),
        default=None,
        help="join two single-tool runs (--tools X --keep-outputs) into one table, comparing the kept outputs",
    )
    args = ap.parse_args(argv)
    if args.report_only:
        print_report(json.loads(args.report_only.read_text()), args.report_only)
        return 0
    if args.combine:
        return combine(args.combine[0], args.combine[1], args.work_dir.resolve(), args.json_out)

    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    shape = LlamaShape(hidden=args.hidden, layers=args.layers, intermediate=args.intermediate,
                       vocab=args.vocab, heads=args.heads, kv_heads=args.heads)

    if "mergekit" in tools and (why := mergekit_available(args.mergekit_python)):
        print(f"SKIP mergekit: {why}")
        tools.remove("mergekit")
    if "safeadapt" in tools and (why := safeadapt_ready()):
        print(f"SKIP safeadapt: {why}")
        tools.remove("safeadapt")
    if not tools:
        print("nothing to run")
        return 1
    args.safeadapt_seed_flag = detect_seed_flag() if "safeadapt" in tools else None

    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "SAFEADAPT_NO_PROGRESS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    load0 = os.getloadavg()
    facts = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
             "loadavg_start": load0, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # fixed startup cost of each CLI (import time), measured the same way
    startup = {}
    for tool in tools:
        cmd = ([*safeadapt_cli(), "merge", "--help"] if tool == "safeadapt"
               else [str(mergekit_cli(args.mergekit_python)), "--help"])
        startup[tool] = min((timed_run(cmd, env=env) for _ in range(2)), key=lambda r: r.wall_s).wall_s
    print("CLI startup (--help) seconds:", {k: round(v, 2) for k, v in startup.items()})

    rows = []
    for dtype in dtypes:
        t0 = time.perf_counter()
        fam = build_family(work / "models" / dtype, shape, dtype, n_finetuned=args.n_finetuned, seed=args.seed,
                           max_shard_size=args.shard_size)
        print(f"[{dtype}] checkpoints ready in {time.perf_counter() - t0:.1f}s: {', '.join(sorted(fam))}")
        for method in methods:
            cfg = method_config(method, fam, dtype)
            cfg_path = write_yaml(cfg, work / "configs" / f"{dtype}_{method}.yaml")
            files = input_files(cfg)
            # physical floor: a plain read of the same files, warm, best of 3
            reads = [read_files(files) for _ in range(3)]
            nbytes = reads[0][0]
            read_s = min(r[1] for r in reads)
            res: dict[str, list] = {t: [] for t in tools}
            outs = {t: work / "out" / dtype / method / t for t in tools}
            for rep in range(args.repeats):
                order = tools if rep % 2 == 0 else list(reversed(tools))
                for tool in order:
                    shutil.rmtree(outs[tool], ignore_errors=True)
                    outs[tool].parent.mkdir(parents=True, exist_ok=True)
                    read_files(files)  # warm the page cache equally before every run
                    r = timed_run(tool_commands(tool, cfg_path, outs[tool], args), env=env, cwd=ROOT)
                    if r.rc != 0:
                        print(f"[{dtype} {method}] {tool} FAILED rc={r.rc}\n{r.tail}")
                    res[tool].append(r)
                    print(f"[{dtype} {method}] rep {rep} {tool}: {r.wall_s:.2f}s wall, {r.max_rss_mb:.0f} MB peak RSS,"
                          f" {r.user_s + r.sys_s:.1f}s cpu")
            row = {"dtype": dtype, "method": method, "input_bytes": nbytes, "read_s": read_s,
                   "read_gbps": nbytes / read_s / 1e9, "config": str(cfg_path)}
            for tool in tools:
                ok = [r for r in res[tool] if r.rc == 0]
                row[tool] = ({"wall_s": min(r.wall_s for r in ok), "rss_mb": min(r.max_rss_mb for r in ok),
                              "cpu_s": min(r.user_s + r.sys_s for r in ok),
                              "all_wall_s": [r.wall_s for r in ok], "all_rss_mb": [r.max_rss_mb for r in ok]}
                             if ok else None)
            sa, mk = row.get("safeadapt"), row.get("mergekit")
            if sa:
                row["sa_over_floor"] = sa["wall_s"] / read_s
            if sa and mk:
                row["time_ratio"] = sa["wall_s"] / mk["wall_s"]
                row["rss_ratio"] = sa["rss_mb"] / mk["rss_mb"]
                if method in EXACT_METHODS:
                    row["compare"] = compare_dirs(outs["safeadapt"], outs["mergekit"])
                else:
                    row["delta_stats"] = {t: delta_stats(outs[t], fam["base"]) for t in ("safeadapt", "mergekit")}
            rows.append(row)
            if not args.keep_outputs:
                for t in tools:
                    shutil.rmtree(outs[t], ignore_errors=True)

    facts["loadavg_end"] = os.getloadavg()
    result = {"facts": facts, "startup_s": startup, "shape": shape.__dict__, "argv": sys.argv, "rows": rows}
    out_json = args.json_out or work / "results.json"
    out_json.write_text(json.dumps(result, indent=2, default=str))

    print_report(result, out_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
