"""Study engine: content-addressed cache keys, the plan (cached / to-run per stage), and the run
itself — stages in topological order, each built atomically in DIR/stages/<name>-<key12>/ with a
`_stage.json` marker written last, so a killed run resumes by re-running only unfinished stages."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from safeadapt import __version__
from safeadapt.core.atomic import atomic_dir, atomic_write_json, atomic_write_text
from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import hash_path, provenance, stable_hash
from safeadapt.study.context import StageContext
from safeadapt.study.schema import Stage, Study

MARKER = "_stage.json"
PATH_FINGERPRINT_BYTES = 1 << 20  # external inputs: size + first/last MiB of each file


def dir_name(name: str, key: str) -> str:
    """Filesystem-safe directory name for a stage: `<name>-<key[:12]>`."""
    safe = re.sub(r"[^A-Za-z0-9._=+-]", "_", name)
    return f"{safe}-{key[:12]}"


@dataclass
class PlannedStage:
    """A stage with its cache key, directories and status (cached / to-run / done / failed ...)."""

    stage: Stage
    key: str
    kind_version: str
    input_keys: dict[str, str]
    dir: Path
    scratch: Path
    status: str = "to-run"
    seconds: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, out_dir: Path) -> dict[str, Any]:
        s = self.stage
        d: dict[str, Any] = {
            "name": s.name,
            "kind": s.kind,
            "template": s.template,
            "inputs": {k: {**r.to_json(), "key": self.input_keys[k]} for k, r in s.inputs.items()},
            "params": s.params,
            "seed": s.seed,
            **({"threads": s.threads} if s.threads is not None else {}),
            "key": self.key,
            "kind_version": self.kind_version,
            "dir": os.path.relpath(self.dir, out_dir),
            "status": self.status,
            "seconds": self.seconds,
        }
        if s.matrix_values:
            d["matrix"] = s.matrix_values
        if s.base_name and s.base_name != s.name or s.replicate is not None:
            d["base_name"], d["replicate"] = s.base_name or s.name, s.replicate
        if self.error:
            d["error"] = self.error
        if self.extra.get("start_unix"):
            d["run"] = {"pid": self.extra.get("pid"), "start_unix": self.extra["start_unix"],
                        "end_unix": self.extra.get("end_unix")}
        if "parallel_with" in self.extra:
            d["parallel_with"] = self.extra["parallel_with"]
        return d


def is_complete(stage_dir: Path, key: str) -> bool:
    """A stage output is complete when its marker exists and records `key`."""
    try:
        return json.loads((stage_dir / MARKER).read_text())["key"] == key
    except (OSError, ValueError, KeyError, TypeError):
        return False


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


def _clean_partials(stages_dir: Path) -> None:
    """Remove temp dirs left by killed stages (never complete-looking: they start with '.')."""
    if stages_dir.is_dir():
        for p in stages_dir.iterdir():
            if p.name.startswith(".") and (p.name.endswith(".partial") or ".old-" in p.name):
                shutil.rmtree(p, ignore_errors=True)


_PROVENANCE_BASE: dict[str, Any] = {}


def _provenance(config: Any = None, inputs: dict[str, str] | None = None, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """`core.provenance.provenance`, with the library versions looked up once per process
    (importlib.metadata costs ~70 ms a call: it dominated the per-stage overhead)."""
    if not _PROVENANCE_BASE:
        _PROVENANCE_BASE.update(provenance())
    return {**_PROVENANCE_BASE, "created_unix": time.time(), "config": config, "inputs": inputs or {}, "timings_s": timings or {}}


def _study_json(study: Study, out_dir: Path, plan: list[PlannedStage], status: str, started: float,
                run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "study": study.name,
        "file": str(study.file) if study.file else None,
        "seed": study.seed,
        **({"seeds": study.seeds} if study.seeds else {}),
        "profile": study.profile,
        "vars": study.vars,
        "status": status,
        "started_unix": started,
        "wall_s": round(time.time() - started, 3),
        **(run_info or {}),
        "stages": [p.to_json(out_dir) for p in plan],
        "provenance": _provenance(config=study.raw),
    }


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
) -> list[PlannedStage]:
    """Run every stage that is not cached, up to `jobs` at a time (None or 0: `default_jobs()`;
    1: in this process; more: spawn-context worker processes, cores // jobs torch threads each);
    write DIR/study.json as it goes.

    On a stage failure the remaining stages that depend on it are 'blocked'; the others stop
    too unless `keep_going` (stages already running finish). Raises `StageFailed` (one line)
    after writing study.json."""
    from rich.console import Console

    from safeadapt.core.runtime import make_progress
    from safeadapt.study.progress import StudyProgress
    from safeadapt.study.scheduler import Scheduler, default_jobs, stage_slots, stage_threads, threads_per_job, useful_workers

    console = console or Console()
    out_dir = Path(out_dir).absolute()  # stage paths must not depend on the caller's cwd
    started = time.time()
    jobs = default_jobs() if not jobs or jobs < 0 else int(jobs)
    with _lock(out_dir):
        _clean_partials(out_dir / "stages")
        plan = select(plan_study(study, out_dir), only)
        by_name = {p.stage.name: p for p in plan}
        workers = useful_workers(plan, jobs)
        # every stage starts with the same thread count, whatever ran before it and wherever it
        # runs: cores // jobs (follows the requested jobs, not the stages left, so it does not
        # depend on what is cached); with jobs=1, this process's count at the start of the run
        threads = threads_per_job(jobs) if jobs > 1 else _current_threads(load=True)
        run_info = {"jobs": workers, "threads_per_job": threads}
        study_json = out_dir / "study.json"

        def write(status: str) -> None:
            atomic_write_json(study_json, _study_json(study, out_dir, plan, status, started, run_info))

        write("running")
        with make_progress() as prog, _mark_interrupted(study, out_dir, plan, started, run_info):
            view = StudyProgress(prog, len(plan), workers, write)
            for p in plan:
                if p.status == "cached":
                    view.cached(p)
            sched = Scheduler(
                plan, workers, keep_going, run=execute_stage,
                args=lambda p: (study, p, out_dir, _input_dirs(p, by_name), stage_threads(p.stage, threads)),
                slots=lambda p: stage_slots(p.stage, threads, workers),
                on_start=view.start, on_finish=view.finish, on_skip=view.skip,
                plugins=[m for m in (study.raw.get("plugins") or []) if isinstance(m, str)],
            )
            sched.execute()
        failures = sched.failures
        _record_parallel(plan)
        write("failed" if failures else "complete")
    with contextlib.suppress(OSError):
        (out_dir / "scratch").rmdir()  # only when empty
    print_summary(plan, console, time.time() - started)
    if failures:
        f = failures[0]
        more = f" (+{len(failures) - 1} more failed)" if len(failures) > 1 else ""
        raise StageFailed(f"stage {f.stage.name!r} ({f.stage.kind}) failed: {f.error}{more}")
    return plan


def _current_threads(load: bool = False) -> int | None:
    """torch's intra-op thread count (None when torch is not imported, or not installed)."""
    import importlib.util
    import sys

    if load and "torch" not in sys.modules and importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F401
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _record_parallel(plan: list[PlannedStage]) -> None:
    """Store, per stage that ran, the stages that ran alongside it (for study.json and the log)."""
    from safeadapt.study.scheduler import overlaps

    for name, others in overlaps(plan).items():
        next(p for p in plan if p.stage.name == name).extra["parallel_with"] = others


@contextlib.contextmanager
def _mark_interrupted(study: Study, out_dir: Path, plan: list[PlannedStage], started: float,
                      run_info: dict[str, Any] | None = None) -> Iterator[None]:
    """Ctrl-C: record the running stage as interrupted in study.json, then re-raise."""
    try:
        yield
    except KeyboardInterrupt:
        for p in plan:
            if p.status == "running":
                p.status = "interrupted"
        atomic_write_json(out_dir / "study.json", _study_json(study, out_dir, plan, "interrupted", started, run_info))
        raise


def _describe_failure(e: BaseException, p: PlannedStage, out_dir: Path) -> str:
    if isinstance(e, SafeAdaptError):
        return e.one_line()
    log = out_dir / "logs" / f"{dir_name(p.stage.name, p.key)}.err"
    atomic_write_text(log, "".join(traceback.format_exception(type(e), e, e.__traceback__)))
    msg = " ".join(str(e).split())[:300]
    return f"{type(e).__name__}: {msg} (traceback: {log})"


def seed_everything(seed: int) -> None:
    """Seed `random`, numpy and torch (imported here when installed: a stage must draw the same
    numbers whether or not an earlier stage in the same process imported torch)."""
    import importlib.util
    import random
    import sys

    random.seed(seed)
    for mod in ("numpy", "torch"):
        if mod not in sys.modules and importlib.util.find_spec(mod) is not None:
            __import__(mod)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % (2**32))
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def _input_dirs(p: PlannedStage, by_name: dict[str, PlannedStage]) -> dict[str, Path]:
    return {slot: by_name[ref.stage].dir if ref.stage is not None else ref.path  # type: ignore[misc]
            for slot, ref in p.stage.inputs.items()}


def execute_stage(study: Study, p: PlannedStage, out_dir: Path, inputs: dict[str, Path], threads: int | None) -> Any:
    """Run one stage (here or in a worker): torch threads set to `threads` for the stage (restored
    after), errors turned into a one-line description (with the traceback saved), Ctrl-C /
    SIGTERM into status 'interrupted'. Returns a scheduler.Outcome."""
    from safeadapt.study.scheduler import Outcome
    from safeadapt.study.stages import STAGE_KINDS

    start = time.time()
    before = _current_threads(load=threads is not None)
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        seconds = _run_one(study, p, out_dir, inputs, STAGE_KINDS.resolve(p.stage.kind),
                           threads if p.stage.threads is not None else None)
        return Outcome("done", seconds, None, os.getpid(), start, time.time())
    except KeyboardInterrupt:
        return Outcome("interrupted", None, "interrupted", os.getpid(), start, time.time())
    except Exception as e:  # noqa: BLE001 - recorded, then re-raised as one line by run_study
        return Outcome("failed", None, _describe_failure(e, p, out_dir), os.getpid(), start, time.time())
    finally:
        if before:  # the stage may have changed it (kinds pin 1 thread): leave the process as it was
            import torch

            torch.set_num_threads(before)


def _run_one(study: Study, p: PlannedStage, out_dir: Path, inputs: dict[str, Path], fn: Any,
             threads: int | None = None) -> float:
    s = p.stage
    p.scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # a dir without a valid marker is not complete: replace it
    with atomic_dir(p.dir, overwrite=p.dir.exists()) as tmp:
        ctx = StageContext(
            name=s.name,
            kind=s.kind,
            params=json.loads(json.dumps(s.params)),  # a private copy
            inputs=inputs,
            out=tmp,
            scratch=p.scratch,
            seed=s.seed,
            study_dir=out_dir,
            base_dir=study.base_dir,
            key=p.key,
            threads=threads,
        )
        seed_everything(s.seed)
        fn(ctx)
        seconds = time.perf_counter() - t0
        marker = {
            "name": s.name,
            "kind": s.kind,
            "key": p.key,
            "seed": s.seed,
            "params": s.params,
            "inputs": {
                k: {**r.to_json(), "key": p.input_keys[k], "dir": str(inputs[k])} for k, r in s.inputs.items()
            },
            "versions": {"safeadapt": __version__, "kind": p.kind_version},
            "study": {"name": study.name, "file": str(study.file) if study.file else None},
            "provenance": _provenance(
                config={"kind": s.kind, "params": s.params, "seed": s.seed, "matrix": s.matrix_values,
                        **({"threads": s.threads, "threads_used": threads} if threads is not None else {})},
                inputs={k: p.input_keys[k] for k in s.inputs},
                timings={"run": round(seconds, 3)},
            ),
        }
        atomic_write_json(tmp / MARKER, marker)  # last: its presence means complete
    shutil.rmtree(p.scratch, ignore_errors=True)  # (the empty scratch/ root is removed by run_study)
    return seconds


def print_plan(plan: list[PlannedStage], console: Any, out_dir: Path) -> None:
    """The dry-run table: stage, kind, inputs, status, key."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"plan ({sum(p.status == 'cached' for p in plan)} cached, {sum(p.status != 'cached' for p in plan)} to run)")
    for col in ("#", "stage", "kind", "inputs", "status", "key"):
        t.add_column(col, overflow="fold", no_wrap=col in ("#", "status", "key"))
    for i, p in enumerate(plan, 1):
        ins = ", ".join(f"{k}={r.stage if r.stage is not None else r.path}" for k, r in p.stage.inputs.items())
        st = "[dim]cached[/dim]" if p.status == "cached" else "[yellow]to-run[/yellow]"
        t.add_row(str(i), escape(p.stage.name), escape(p.stage.kind), escape(ins) or "-", st, p.key[:12])
    console.print(t)


def print_summary(plan: list[PlannedStage], console: Any, wall: float) -> None:
    """Per-stage timings at the end of a run."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"study summary ({wall:.1f}s wall)")
    parallel = any(p.extra.get("parallel_with") for p in plan)
    for col in ("stage", "kind", "status", "seconds") + (("ran alongside",) if parallel else ()):
        t.add_column(col, overflow="fold")
    for p in plan:
        secs = f"{p.seconds:.1f}" if p.seconds is not None else "-"
        row = [escape(p.stage.name), escape(p.stage.kind), p.status, secs]
        if parallel:
            row.append(escape(", ".join(p.extra.get("parallel_with") or [])) or "-")
        t.add_row(*row)
    console.print(t)
