"""CLI: `safeadapt merge CONFIG.yaml --out DIR` — merge checkpoints from a mergekit-style recipe."""

from __future__ import annotations

from pathlib import Path

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.console import say


@user_errors
def merge_cmd(
    config: Path = typer.Argument(
        ..., help="mergekit-style YAML recipe (merge_method, base_model, models, parameters, dtype)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output model directory (written atomically)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Allow pickle (.bin) inputs; only for checkpoints you trust."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed for stochastic methods (dare_*); per-tensor seeds derive from it."
    ),
    max_shard_size: str = typer.Option("5GB", "--max-shard-size", help="Largest safetensors shard, e.g. 5GB, 500MB."),
    copy_tokenizer_from: str = typer.Option(
        None, "--copy-tokenizer-from", help="Take tokenizer files from this input model."
    ),
    threads: int = typer.Option(
        1, "--threads", help="torch compute threads (a reader thread overlaps I/O; 0 = torch's default)."
    ),
) -> None:
    """Merge models (linear, task_arithmetic, ties, dare_linear, dare_ties, slerp, breadcrumbs), tensor by tensor."""
    from safeadapt.io.writer import parse_size
    from safeadapt.repair.merge.api import merge

    size = parse_size(max_shard_size)
    path = merge(config, out, overwrite=overwrite, allow_pickle=allow_pickle, seed=seed,
                 max_shard_size=size, copy_tokenizer_from=copy_tokenizer_from,
                 threads=threads or None)
    say(f"merged model written to {path}")


def register(app: typer.Typer) -> None:
    """Add `safeadapt merge` to the main app."""
    app.command("merge")(merge_cmd)
