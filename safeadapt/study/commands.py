"""CLI command of the study pipeline: `safeadapt run STUDY.yaml --out DIR [--dry-run]` runs a
study DAG with caching/resume (`run_study_file`); plugins add commands such as `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.errors import SafeAdaptError

SEEDS_HELP = ("Replicate the study over these seeds, e.g. 0,1,2: stages that do not depend on the seed run once; "
              "results.json gets per-seed values and the across-seed mean and 95% interval of every metric.")
EXECUTOR_HELP = ("Where stages run: local (worker processes on this machine) or slurm (one SLURM job a stage, "
                 "resources from each stage's threads / memory_gb / gpus / slurm:; see docs/study.md).")
SLURM_OPTION_HELP = "Extra sbatch option of every job (repeatable), written --slurm-option=--exclusive."
STATUS_HELP = "Show each stage's state and SLURM job in this study directory; run nothing."
SLURM_FLAGS = {"partition": "--slurm-partition", "time": "--slurm-time", "account": "--slurm-account",
               "qos": "--slurm-qos", "constraint": "--slurm-constraint", "sbatch": "--slurm-option"}
JOBS_HELP = ("Stages run at once, each in its own worker process with cores/N torch threads (default: the "
             "number of cores, capped by available memory at 1.5 GB a job; 1 = one at a time in this process). "
             "With --executor slurm: the most SLURM jobs queued at once (default: no limit).")


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
    executor: str = "local",
    slurm: dict[str, Any] | None = None,
) -> Any:
    """Validate, then plan (dry run) or run a study (`executor`: local or slurm, with `slurm` the
    command line's SLURM settings). Returns the plan."""
    from safeadapt.core.console import console as the_console
    from safeadapt.study.engine import plan_study, run_study
    from safeadapt.study.record import print_plan
    from safeadapt.study.replicates import parse_seeds
    from safeadapt.study.schema import load_study, parse_overrides

    seed_list = parse_seeds(seeds, "--seeds: ") if seeds is not None else None
    study = load_study(study_file, overrides=parse_overrides(sets), profile=profile, seed=seed, seeds=seed_list)
    console = the_console()
    if dry_run:
        from safeadapt.study.engine import select
        from safeadapt.study.refs import check_refs, print_refs

        plan = select(plan_study(study, out), only)
        print_plan(plan, console, out)
        if executor == "slurm":
            from safeadapt.study.status import print_resources

            print_resources(study, plan, slurm, console)
        print_refs(check_refs(study), console)  # hub ids validated as names, offline
        return plan
    return run_study(study, out, only=only, keep_going=keep_going, console=console, jobs=jobs, executor=executor,
                     slurm=slurm)


def register(app: typer.Typer) -> None:
    """Add `run` to the main app."""

    @app.command("run")
    @user_errors
    def run(
        study: Optional[Path] = typer.Argument(None, help="Study YAML (see docs/study.md)."),
        out: Optional[Path] = typer.Option(
            None, "--out", "-o", help="Study directory (stages/, scratch/, study.json)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the plan (kind, inputs, cached/to-run, key); run nothing."
        ),
        seed: Optional[int] = typer.Option(None, "--seed", help="Override the study seed."),
        profile: Optional[str] = typer.Option(None, "--profile", help="Apply a named profile of variable overrides."),
        set_: Optional[list[str]] = typer.Option(
            None, "--set", help="Override a study variable: name=value (repeatable)."
        ),
        only: Optional[list[str]] = typer.Option(
            None, "--only", help="Run only these stages (names/globs) and their inputs."
        ),
        keep_going: bool = typer.Option(
            False, "--keep-going", help="After a failure, still run stages that do not depend on it."
        ),
        jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
        seeds: Optional[str] = typer.Option(None, "--seeds", help=SEEDS_HELP),
        executor: str = typer.Option("local", "--executor", help=EXECUTOR_HELP),
        slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="SLURM partition of every job."),
        slurm_time: Optional[str] = typer.Option(
            None, "--slurm-time", help="Time limit of every job: minutes or D-HH:MM:SS."
        ),
        slurm_account: Optional[str] = typer.Option(None, "--slurm-account", help="SLURM account charged."),
        slurm_qos: Optional[str] = typer.Option(None, "--slurm-qos", help="SLURM quality of service."),
        slurm_constraint: Optional[str] = typer.Option(
            None, "--slurm-constraint", help="Node features required (--constraint)."
        ),
        slurm_option: Optional[list[str]] = typer.Option(None, "--slurm-option", help=SLURM_OPTION_HELP),
        status: Optional[Path] = typer.Option(None, "--status", help=STATUS_HELP),
    ) -> None:
        """Run a study DAG with content-addressed caching; a re-run resumes where it stopped."""
        from safeadapt.report.commands import write_study_report
        from safeadapt.study.engine import StageFailed

        if status is not None:
            from safeadapt.study.status import print_status

            print_status(status)
            return
        if study is None or out is None:
            raise SafeAdaptError("give a study file and --out DIR (or --status DIR)")
        from safeadapt.study.executors.resources import parse_slurm

        cli = {"partition": slurm_partition, "account": slurm_account, "qos": slurm_qos, "constraint": slurm_constraint,
               "time": int(slurm_time) if slurm_time and slurm_time.isdigit() else slurm_time, "sbatch": slurm_option}
        slurm = parse_slurm({k: v for k, v in cli.items() if v}, "", names=SLURM_FLAGS)
        if slurm and executor != "slurm":
            raise SafeAdaptError("--slurm-* options need --executor slurm")
        try:
            plan = run_study_file(study, out, dry_run=dry_run, seed=seed, profile=profile, sets=set_, only=only,
                                  keep_going=keep_going, jobs=jobs, seeds=seeds, executor=executor, slurm=slurm)
        except StageFailed:
            write_study_report(out)  # what finished before the failure, in report.html too
            raise
        if not dry_run:
            from safeadapt.core.console import say
            from safeadapt.study.replicates import write_results

            if plan and any(p.stage.replicate is not None for p in plan) and write_results(out) is not None:
                say(f"across-seed metrics written to {out / 'results.json'}")
            report = write_study_report(out)
            say(f"study written to {out} (study.json{', report.html' if report else ''})")
