"""CLI: `safeadapt repair RECIPE.yaml --out DIR` — repair a model whose safety eroded (antidote,
set_difference, resta, safemerge, somf) with the merge engine's streaming writer."""

from __future__ import annotations

from pathlib import Path

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.console import say


@user_errors
def repair_cmd(
    recipe: Path = typer.Argument(
        ..., help="Repair recipe YAML (repair_method, adapted, aligned, unaligned, parameters, calibration, filters)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output model directory (written atomically)."),
    seed: int = typer.Option(0, "--seed", help="Seed for calibration sampling, random ablations, DARE and SOMF."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Allow pickle (.bin) inputs; only for checkpoints you trust."
    ),
    max_shard_size: str = typer.Option("5GB", "--max-shard-size", help="Largest safetensors shard, e.g. 5GB, 500MB."),
) -> None:
    """Repair safety after adaptation: antidote, set_difference (graft/prune), resta, safemerge, somf."""
    from safeadapt.io.writer import parse_size
    from safeadapt.repair.api import repair

    path = repair(
        recipe,
        out,
        seed=seed,
        overwrite=overwrite,
        allow_pickle=allow_pickle,
        max_shard_size=parse_size(max_shard_size),
    )
    say(f"repaired model written to {path}")


def register(app: typer.Typer) -> None:
    """Add `safeadapt repair` to the main app."""
    app.command("repair")(repair_cmd)
