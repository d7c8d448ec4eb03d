"""CLI: `safeadapt eval MODEL --suite a,b --judge refusal --out DIR [...]` — runs evaluation suites
on a model (local HF dir / GGUF / served endpoint) and writes results.json + generations.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from safeadapt.core.cli_support import user_errors

DEFAULT_SUITES = "text-safety,jailbreak,over-refusal,mm-safety,helpfulness"


def _parse_datasets(specs: list[str]) -> dict[str, list[Any]]:
    from safeadapt.core.errors import SafeAdaptError

    out: dict[str, list[Any]] = {}
    for spec in specs:
        if "=" not in spec:
            raise SafeAdaptError(f"--dataset {spec!r}: expected SUITE=SPEC (e.g. over-refusal=xstest:/path/xstest_prompts.csv)")
        suite, _, src = spec.partition("=")
        from safeadapt.data.loaders import load_samples

        samples = list(load_samples(src.strip()))
        if not samples:
            raise SafeAdaptError(f"dataset {src.strip()!r} for suite {suite.strip()!r} is empty")
        out.setdefault(suite.strip(), []).extend(samples)
    return out


def register(app: typer.Typer) -> None:
    @app.command("eval")
    @user_errors
    def eval_cmd(
        model: str = typer.Argument(..., help="model: HF dir, .gguf file, hub id (offline cache), or served model name with --backend openai"),
        suite: str = typer.Option(DEFAULT_SUITES, "--suite", help="comma-separated suites"),
        judge: str = typer.Option("refusal", "--judge", help="judge name (safeadapt.eval.judges)"),
        out: Path = typer.Option(..., "--out", help="output directory (results.json, generations.jsonl, cache/)"),
        max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1),
        batch_size: int = typer.Option(16, "--batch-size", min=1),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads (default: leave torch's setting)"),
        seed: int = typer.Option(0, "--seed"),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="max items per suite (round-robin over categories)"),
        dataset: list[str] = typer.Option([], "--dataset", help="SUITE=SPEC override (repeatable); SPEC as for safeadapt.data.loaders.load_samples"),
        temperature: float = typer.Option(0.0, "--temperature", min=0.0),
        top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
        bootstrap: int = typer.Option(1000, "--bootstrap", min=0),
        backend: str = typer.Option("auto", "--backend", help="auto (vllm when installed and a GPU is present, else hf) | hf | vllm | openai"),
        dtype: str = typer.Option("float32", "--dtype"),
        base_url: Optional[str] = typer.Option(None, "--base-url", help="openai backend: http://host:port/v1"),
        api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="openai backend: env var holding the API key"),
        allow_pickle: bool = typer.Option(False, "--allow-pickle"),
        trust_remote_code: bool = typer.Option(False, "--trust-remote-code"),
    ) -> None:
        """Evaluate MODEL on safety and helpfulness suites (generate once, grade many)."""
        from rich.console import Console
        from rich.table import Table

        from safeadapt.core.errors import SafeAdaptError
        from safeadapt.eval.runner import evaluate, resolve_judge, validate_suites
        from safeadapt.eval.types import DecodingConfig

        names = validate_suites(suite)
        judge_obj = resolve_judge(judge)  # unknown judge -> one-line error before loading the model
        datasets = _parse_datasets(dataset)
        for k in datasets:
            if k not in names:
                raise SafeAdaptError(f"--dataset given for suite {k!r}, which is not in --suite {','.join(names)}")
        if backend in ("hf", "auto"):  # auto: the options the chosen backend takes are kept
            opts: dict[str, Any] = {"dtype": dtype, "threads": threads, "max_batch": batch_size,
                                    "allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
        elif backend == "openai":
            opts = {"api_key_env": api_key_env, **({"base_url": base_url} if base_url else {})}
        elif backend == "vllm":
            opts = {"dtype": dtype, "trust_remote_code": trust_remote_code}
        else:
            raise SafeAdaptError(f"unknown backend {backend!r}; known: auto, hf, vllm, openai")
        dec = DecodingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size)
        res = evaluate(model, names, out, judge=judge_obj, datasets=datasets, decoding=dec, seed=seed,
                       bootstrap=bootstrap, limit=limit, backend=backend, backend_options=opts)
        table = Table(title=f"safeadapt eval: {model}")
        for col in ("suite", "metric", "value", "95% CI", "k/n", "note"):
            table.add_column(col)
        for name, block in res["suites"].items():
            m = block["metric"]
            v = block[m]
            if v["value"] is None:
                table.add_row(name, m, "-", "-", "0/0", block.get("skipped") or "")
            else:
                table.add_row(name, m, f"{v['value']:.3f}", f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]", f"{v['k']}/{v['n']}", "")
        Console().print(table)
        typer.echo(f"wrote {Path(out) / 'results.json'} and {Path(out) / 'generations.jsonl'}")
