"""Study engine: content-addressed cache keys, the plan (cached / to-run per stage), and the run
itself — stages in topological order, each built atomically in DIR/stages/<name>-<key12>/ (`execute`)
with a `_stage.json` marker written last, so a killed run resumes by re-running only unfinished stages."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

from safeadapt import __version__
from safeadapt.core.atomic import atomic_write_json
from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import hash_path, stable_hash
from safeadapt.study.execute import current_threads, execute_stage, stage_log
from safeadapt.study.record import (
    PlannedStage,
    dir_name,
    is_complete,
    mark_interrupted,
    print_summary,
    record_parallel,
    study_record,
)
from safeadapt.study.types import Study

__all__ = ["PATH_FINGERPRINT_BYTES", "StageFailed", "plan_study", "run_study", "select"]

PATH_FINGERPRINT_BYTES = 1 << 20  # external inputs: size + first/last MiB of each file


def plan_study(study: Study, out_dir: str | os.PathLike) -> list[PlannedStage]:
    """Cache keys and statuses for every stage, in run order. Reads only (no writes)."""
    from safeadapt.study.stages import STAGE_KINDS

    out_dir = Path(out_dir).absolute()  # stage paths must not depend on the caller's cwd
    keys: dict[str, str] = {}
    plan: list[PlannedStage] = []
    for s in study.stages:
        input_keys: dict[str, str] = {}
        for slot, ref in s.inputs.items():
            if ref.stage is not None:
                input_keys[slot] = keys[ref.stage]
            else:
                assert ref.path is not None
                input_keys[slot] = "path:" + hash_path(ref.path, max_bytes=PATH_FINGERPRINT_BYTES)
        kv = STAGE_KINDS.version_of(s.kind, s.params, study.base_dir)
        fields = {"kind": s.kind, "params": s.params, "seed": s.seed, "inputs": input_keys, "safeadapt": __version__,
                  "kind_version": kv}
        if s.threads is not None:  # a declared thread count changes the numbers (float sums)
            fields["threads"] = s.threads
        key = stable_hash(fields)
        keys[s.name] = key
        base = s.base_name or s.name  # a replicate's dir is named as in a one-seed run: same key, same dir
        d = out_dir / "stages" / dir_name(base, key)
        ps = PlannedStage(s, key, kv, input_keys, d, out_dir / "scratch" / dir_name(base, key))
        ps.status = "cached" if is_complete(d, key) else "to-run"
        plan.append(ps)
    return plan


def select(plan: list[PlannedStage], only: list[str] | None) -> list[PlannedStage]:
    """Restrict to the stages matching `only` (names or globs) plus everything they depend on."""
    if not only:
        return plan
    import fnmatch

    by = {p.stage.name: p for p in plan}
    want: set[str] = set()
    for pat in only:
        hits = [n for n in by if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise SafeAdaptError(f"--only {pat!r} matches no stage; stages: {', '.join(by)}")
        todo = list(hits)
        while todo:
            n = todo.pop()
            if n not in want:
                want.add(n)
                todo.extend(by[n].stage.upstream)
    return [p for p in plan if p.stage.name in want]


@contextlib.contextmanager
def _lock(out_dir: Path) -> Iterator[None]:
    """One run per study directory at a time (advisory lock on DIR/.study.lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    fh = open(out_dir / ".study.lock", "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SafeAdaptError(f"another safeadapt run is using {out_dir} (lock {out_dir / '.study.lock'})") from None
        yield
    finally:
        fh.close()


def _clean_partials(stages_dir: Path, keep: set[str] | frozenset[str] = frozenset()) -> None:
    """Remove temp dirs left by killed stages (never complete-looking: they start with '.'), but
    not those of the stage dirs in `keep` (their SLURM job still runs)."""
    if stages_dir.is_dir():
        for p in stages_dir.iterdir():
            if p.name.startswith(".") and (p.name.endswith(".partial") or ".old-" in p.name) \
                    and not any(p.name.startswith(f".{k}.") for k in keep):
                shutil.rmtree(p, ignore_errors=True)


class StageFailed(SafeAdaptError):
    """A stage raised; the message names the stage and where its traceback was written."""


def run_study(
    study: Study,
    out_dir: str | os.PathLike,
    *,
    only: list[str] | None = None,
    keep_going: bool = False,
    console: Any = None,
    jobs: int | None = 1,
    executor: str = "local",
    slurm: dict[str, Any] | None = None,
) -> list[PlannedStage]:
    """Run every stage that is not cached, up to `jobs` at a time (None or 0: `default_jobs()`;
    1: in this process; more: spawn-context worker processes, cores // jobs torch threads each);
    write DIR/study.json as it goes. `executor="slurm"`: each stage one SLURM job instead
    (executors/slurm.py; `jobs` None: no limit on the jobs queued at once; `slurm`: the
    command line's settings, over the study's `slurm:` blocks).

    On a stage failure the remaining stages that depend on it are 'blocked'; the others stop
    too unless `keep_going` (stages already running finish). Raises `StageFailed` (one line)
    after writing study.json."""
    from safeadapt.core.console import claim_console
    from safeadapt.core.console import console as the_console
    from safeadapt.core.runtime import make_progress
    from safeadapt.study.progress import StudyProgress
    from safeadapt.study.scheduler import (
        Scheduler,
        default_jobs,
        memory_budget_gb,
        stage_memory_gb,
        stage_slots,
        stage_threads,
        threads_per_job,
        useful_workers,
    )

    claim_console()  # this process shows the study's rows; its stages' own prints go to their logs
    console = console or the_console()
    out_dir = Path(out_dir).absolute()  # stage paths must not depend on the caller's cwd
    started = time.time()
    plugins = [m for m in (study.raw.get("plugins") or []) if isinstance(m, str)]
    if executor not in ("local", "slurm"):
        raise SafeAdaptError(f"unknown executor {executor!r}; known: local, slurm")
    cap = int(jobs) if jobs and jobs > 0 else None
    jobs = default_jobs() if not jobs or jobs < 0 else int(jobs)
    with _lock(out_dir):
        ex: Any = None
        if executor == "slurm":
            from safeadapt.study.executors.slurm import SlurmExecutor

            ex = SlurmExecutor(study, out_dir, dict(slurm or {}), plugins)  # reads the last study.json
        else:
            _no_live_jobs(out_dir)
        _clean_partials(out_dir / "stages", keep=ex.keep_dirs() if ex else frozenset())
        plan = select(plan_study(study, out_dir), only)
        by_name = {p.stage.name: p for p in plan}
        if ex is not None:
            ex.adopt(plan)
        if ex is None:
            workers = useful_workers(plan, jobs)
            # every stage starts with the same thread count, whatever ran before it and wherever it
            # runs: cores // jobs (follows the requested jobs, not the stages left, so it does not
            # depend on what is cached); with jobs=1, this process's count at the start of the run
            threads = threads_per_job(jobs) if jobs > 1 else current_threads(load=True)
            run_info: dict[str, Any] = {"jobs": workers, "threads_per_job": threads}
        else:  # a job's threads are decided on its node (run_job): declared, else its CPUs
            workers = max(1, min(cap or len(plan), len(plan)))
            threads = None
            run_info = {"executor": "slurm", "jobs": workers}
        study_json = out_dir / "study.json"

        def write(status: str) -> None:
            atomic_write_json(study_json, study_record(study, out_dir, plan, status, started, run_info))

        write("running")
        with make_progress() as prog, mark_interrupted(study, out_dir, plan, started, run_info):
            view = StudyProgress(prog, len(plan), workers, write, log_of=lambda p: stage_log(out_dir, p))
            for p in plan:
                if p.status == "cached":
                    view.cached(p)
            if ex is not None:
                ex.record = lambda: write("running")
                ex.say = lambda text: prog.console.print(text, markup=False, highlight=False)
            sched = Scheduler(
                plan, workers, keep_going, run=execute_stage,
                args=lambda p: (study, p, out_dir, _input_dirs(p, by_name),
                                stage_threads(p.stage, threads) if ex is None else p.stage.threads),
                slots=lambda p: 1 if ex is not None else stage_slots(p.stage, threads, workers),
                memory=lambda p: stage_memory_gb(p.stage),
                memory_budget=memory_budget_gb() if workers > 1 and ex is None else None,
                on_start=view.start, on_finish=view.finish, on_skip=view.skip, plugins=plugins, executor=ex,
            )
            sched.execute()
        failures = sched.failures
        record_parallel(plan)
        write("failed" if failures else "complete")
    for empty in ("scratch", "logs"):  # only when empty (logs/ keeps the logs of failed stages)
        with contextlib.suppress(OSError):
            (out_dir / empty).rmdir()
    print_summary(plan, console, time.time() - started)
    if failures:
        f = failures[0]
        more = f" (+{len(failures) - 1} more failed)" if len(failures) > 1 else ""
        raise StageFailed(f"stage {f.stage.name!r} ({f.stage.kind}) failed: {f.error}{more}")
    return plan


def _no_live_jobs(out_dir: Path) -> None:
    """A local run must not build the stages that SLURM jobs of an earlier run are building."""
    if (out_dir / "slurm").is_dir():
        from safeadapt.study.executors.slurm import live_jobs

        live = live_jobs(out_dir)
        if live:
            jobs = ", ".join(f"{n} (job {j})" for n, j in live)
            raise SafeAdaptError(f"SLURM jobs of an earlier run of {out_dir} are still running: {jobs}; re-run with "
                                 "--executor slurm to wait for them, or scancel them first")


def _input_dirs(p: PlannedStage, by_name: dict[str, PlannedStage]) -> dict[str, Path]:
    return {slot: by_name[ref.stage].dir if ref.stage is not None else ref.path  # type: ignore[misc]
            for slot, ref in p.stage.inputs.items()}
