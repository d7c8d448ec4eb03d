"""CLI command of the study pipeline: `safeadapt run STUDY.yaml --out DIR [--dry-run]` runs a
study DAG with caching/resume (`run_study_file`); plugins add commands such as `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from safeadapt.core.cli_support import user_errors

SEEDS_HELP = ("Replicate the study over these seeds, e.g. 0,1,2: stages that do not depend on the seed run once; "
              "results.json gets per-seed values and the across-seed mean and 95% interval of every metric.")
JOBS_HELP = ("Stages run at once, each in its own worker process with cores/N torch threads (default: the "
             "number of cores, capped by available memory at 1.5 GB a job; 1 = one at a time in this process).")


def run_study_file(
    study_file: Path,
    out: Path,
    *,
    dry_run: bool = False,
    seed: int | None = None,
    profile: str | None = None,
    sets: list[str] | None = None,
    only: list[str] | None = None,
    keep_going: bool = False,
    jobs: int | None = None,
    seeds: str | list[int] | None = None,
) -> Any:
    """Validate, then plan (dry run) or run a study. Returns the plan."""
    from rich.console import Console

    from safeadapt.study.engine import plan_study, run_study
    from safeadapt.study.record import print_plan
    from safeadapt.study.replicates import parse_seeds
    from safeadapt.study.schema import load_study, parse_overrides

    seed_list = parse_seeds(seeds, "--seeds: ") if seeds is not None else None
    study = load_study(study_file, overrides=parse_overrides(sets), profile=profile, seed=seed, seeds=seed_list)
    console = Console()
    if dry_run:
        from safeadapt.study.engine import select

        from safeadapt.study.refs import check_refs, print_refs

        plan = select(plan_study(study, out), only)
        print_plan(plan, console, out)
        print_refs(check_refs(study), console)  # hub ids validated as names, offline
        return plan
    return run_study(study, out, only=only, keep_going=keep_going, console=console, jobs=jobs)


def register(app: typer.Typer) -> None:
    """Add `run` to the main app."""

    @app.command("run")
    @user_errors
    def run(
        study: Path = typer.Argument(..., help="Study YAML (see docs/study.md)."),
        out: Path = typer.Option(..., "--out", "-o", help="Study directory (stages/, scratch/, study.json)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (kind, inputs, cached/to-run, key); run nothing."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Override the study seed."),
        profile: Optional[str] = typer.Option(None, "--profile", help="Apply a named profile of variable overrides."),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a study variable: name=value (repeatable)."),
        only: Optional[list[str]] = typer.Option(None, "--only", help="Run only these stages (names/globs) and their inputs."),
        keep_going: bool = typer.Option(False, "--keep-going", help="After a failure, still run stages that do not depend on it."),
        jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
        seeds: Optional[str] = typer.Option(None, "--seeds", help=SEEDS_HELP),
    ) -> None:
        """Run a study DAG with content-addressed caching; a re-run resumes where it stopped."""
        from safeadapt.report.commands import write_study_report
        from safeadapt.study.engine import StageFailed

        try:
            plan = run_study_file(study, out, dry_run=dry_run, seed=seed, profile=profile, sets=set_, only=only,
                                  keep_going=keep_going, jobs=jobs, seeds=seeds)
        except StageFailed:
            write_study_report(out)  # what finished before the failure, in report.html too
            raise
        if not dry_run:
            from safeadapt.study.replicates import write_results

            if plan and any(p.stage.replicate is not None for p in plan) and write_results(out) is not None:
                typer.echo(f"across-seed metrics written to {out / 'results.json'}")
            report = write_study_report(out)
            typer.echo(f"study written to {out} (study.json{', report.html' if report else ''})")
