"""What `safeadapt run` shows besides running: `--dry-run --executor slurm` prints each stage's sbatch
resources, `--status DIR` each stage's state in a study directory with its SLURM job and, while
SLURM still knows the job, the job's own state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError


def print_resources(study: Any, plan: list[Any], cli: dict[str, Any] | None, console: Any) -> None:
    """The dry-run table of `--executor slurm`: what each stage's job will ask for."""
    from rich.markup import escape
    from rich.table import Table

    from safeadapt.study.executors.resources import describe, sbatch_resources

    t = Table(title="SLURM jobs (one a stage to run; '-': the cluster's default)")
    cols = ("stage", "partition", "time", "cpus", "mem", "gpus", "other")
    for c in cols:
        t.add_column(c, overflow="fold")
    for p in plan:
        if p.status == "cached":
            continue
        d = describe(sbatch_resources(study, p.stage, cli))
        t.add_row(escape(p.stage.name), *(escape(d[c]) for c in cols[1:]))
    console.print(t)


def study_status(out: Path) -> dict[str, Any]:
    """study.json of `out` with each stage's 'state' refined: 'done' / 'cached' when its output is
    complete on disk, else the recorded status; 'job_state' from squeue for recorded SLURM jobs."""
    from safeadapt.study.record import is_complete

    f = out / "study.json"
    try:
        rec = json.loads(f.read_text())
    except OSError:
        raise SafeAdaptError(f"no study.json in {out}: not a study directory (or never run)") from None
    except ValueError:
        raise SafeAdaptError(f"{f} is not valid JSON") from None
    ids = [str((s.get("job") or {}).get("id")) for s in rec.get("stages", []) if (s.get("job") or {}).get("id")]
    states: dict[str, str] = {}
    if ids and shutil.which("squeue"):
        from safeadapt.study.executors.slurm import job_states

        states = job_states(ids) or {}
    for s in rec.get("stages", []):
        complete = is_complete(out / s.get("dir", ""), s.get("key", ""))
        s["state"] = s.get("status") if complete and s.get("status") in ("done", "cached") else (
            "done" if complete else s.get("status"))
        jid = str((s.get("job") or {}).get("id") or "")
        s["job_state"] = states.get(jid, "") if jid else ""
    rec["active"] = _locked(out)
    return rec


def _locked(out: Path) -> bool:
    """Whether a `safeadapt run` holds the study directory's lock now."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        return False
    lock = out / ".study.lock"
    if not lock.exists():
        return False
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


def print_status(out: Path) -> dict[str, Any]:
    """The `--status` table: stage, kind, state, SLURM job id and state, seconds."""
    from rich.markup import escape
    from rich.table import Table

    rec = study_status(Path(out))
    driver = "a run is active" if rec["active"] else "no run active"
    t = Table(title=f"{rec.get('study')}: {rec.get('status')} ({driver}; executor {rec.get('executor', 'local')})")
    for c in ("stage", "kind", "state", "job", "job state", "seconds"):
        t.add_column(c, overflow="fold")
    for s in rec.get("stages", []):
        secs = f"{s['seconds']:.1f}" if isinstance(s.get("seconds"), (int, float)) else "-"
        t.add_row(escape(s["name"]), escape(s.get("kind", "")), escape(str(s["state"])),
                  escape(str((s.get("job") or {}).get("id") or "-")), escape(s["job_state"] or "-"), secs)
    from safeadapt.core.console import console

    console().print(t)
    return rec
