"""CLI: `safeadapt search SPACE.yaml --out DIR [--trials N] [--proxy-frac F]` — the Pareto search
over repairs; writes DIR/pareto.json, DIR/trials.jsonl, DIR/summary.json and DIR/recipes/."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.console import say


@user_errors
def search_cmd(
    space: Path = typer.Argument(
        ..., help="Search space YAML (models, eval, methods with parameter ranges; docs/search.md)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output dir (search.db, trials.jsonl, pareto.json); rerun to resume."
    ),
    trials: Optional[int] = typer.Option(
        None, "--trials", min=1, help="Finished trials wanted in total (default: the space's search.trials)."
    ),
    proxy_frac: Optional[float] = typer.Option(
        None, "--proxy-frac", help="Share of each suite (stratified) every trial is scored on."
    ),
) -> None:
    """Search repairs for the safety/helpfulness Pareto front (optuna; proxy then full evaluation)."""
    from safeadapt.repair.search import search

    search(space, out, trials=trials, proxy_frac=proxy_frac)
    say(f"front written to {out / 'pareto.json'} (every trial in {out / 'trials.jsonl'})")


def register(app: typer.Typer) -> None:
    """Add `safeadapt search` to the main app."""
    app.command("search")(search_cmd)
