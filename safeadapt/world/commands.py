"""The `safeadapt demo` command (added by the world's plugin): runs the miniature-world study,
summarises it (`summary.summarize`: DIR/results.json and the table) and writes DIR/report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.commands import JOBS_HELP, SEEDS_HELP, run_study_file

DEMO_STUDY = Path(__file__).resolve().parent / "demo_study.yaml"


def register(app: typer.Typer) -> None:
    """Add `demo` to the main app."""

    @app.command("demo")
    @user_errors
    def demo(
        out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
        seed: int = typer.Option(0, "--seed", help="Seed for every stochastic step (ignored with --seeds)."),
        quick: bool = typer.Option(False, "--quick", help="Smaller, faster run (the study's 'quick' profile)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only."),
        jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
        seeds: Optional[str] = typer.Option(None, "--seeds", help=SEEDS_HELP),
    ) -> None:
        """Run the built-in miniature-world study end to end and print the results table."""
        run_demo(out, seed=seed, quick=quick, dry_run=dry_run, jobs=jobs, seeds=seeds)


def run_demo(out: Path, *, seed: int = 0, quick: bool = False, dry_run: bool = False, study_file: Path | None = None,
             profile: str | None = None, jobs: int | None = None,
             seeds: str | list[int] | None = None) -> dict[str, Any] | None:
    """Run the demo study, then summarise it (`safeadapt.world.summary.summarize`, the built-in study) and
    write OUT/report.html. `profile` picks a named profile (tests: "micro"); `quick` the quick one;
    `jobs` stages at once; `seeds` one run per seed with across-seed intervals."""
    study_file = study_file or DEMO_STUDY
    if not study_file.is_file():
        raise SafeAdaptError(f"demo study not found: {study_file} (the world package is not installed)")
    sets: list[str] = []
    if quick:
        import yaml

        data = yaml.safe_load(study_file.read_text(encoding="utf-8")) or {}
        if "quick" in (data.get("profiles") or {}):
            profile = "quick"
        elif "quick" in (data.get("vars") or {}):
            sets = ["quick=true"]
        else:
            raise SafeAdaptError(f"{study_file}: --quick needs a 'quick' profile or a 'quick' variable in the study")
    run_study_file(
        study_file,
        out,
        dry_run=dry_run,
        seed=None if seeds is not None else seed,
        profile=profile,
        sets=sets,
        jobs=jobs,
        seeds=seeds,
    )
    if dry_run:
        return None
    from safeadapt.report.commands import write_study_report

    if study_file == DEMO_STUDY:
        from safeadapt.world.summary import summarize

        res = summarize(out)
        report = write_study_report(out)
        if report:
            from safeadapt.core.console import say

            say(f"report: {report}")
        return res
    _print_outputs(out)
    write_study_report(out)
    return None


def _print_outputs(out: Path) -> None:
    """Fallback summary: each stage's output dir and files."""
    import json

    from rich.markup import escape
    from rich.table import Table

    from safeadapt.core.console import console

    data = json.loads((out / "study.json").read_text())
    t = Table(title="stage outputs")
    for c in ("stage", "status", "dir", "files"):
        t.add_column(c, overflow="fold")
    for s in data["stages"]:
        d = out / s["dir"]
        files = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
        t.add_row(
            escape(s["name"]),
            s["status"],
            escape(s["dir"]),
            escape(", ".join(files[:8]) + (" ..." if len(files) > 8 else "")),
        )
    console().print(t)
