"""What a study run records: each stage's `PlannedStage` (its dir `<name>-<key12>`, its `_stage.json`
marker and its study.json entry), study.json itself with provenance, and the plan / summary tables."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from safeadapt.core.atomic import atomic_write_json
from safeadapt.core.provenance import provenance
from safeadapt.study.types import Stage, Study

MARKER = "_stage.json"


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
            **({"memory_gb": s.memory_gb} if s.memory_gb is not None else {}),
            **({"gpus": s.gpus} if s.gpus is not None else {}),
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
        if self.extra.get("job"):  # the SLURM job that runs / ran it: {executor, id, log}
            d["job"] = self.extra["job"]
        if "parallel_with" in self.extra:
            d["parallel_with"] = self.extra["parallel_with"]
        return d


def is_complete(stage_dir: Path, key: str) -> bool:
    """A stage output is complete when its marker exists and records `key`."""
    try:
        return json.loads((stage_dir / MARKER).read_text())["key"] == key
    except (OSError, ValueError, KeyError, TypeError):
        return False


_PROVENANCE_BASE: dict[str, Any] = {}


def run_provenance(
    config: Any = None, inputs: dict[str, str] | None = None, timings: dict[str, float] | None = None
) -> dict[str, Any]:
    """`core.provenance.provenance`, with the library versions looked up once per process
    (importlib.metadata costs ~70 ms a call: it dominated the per-stage overhead)."""
    if not _PROVENANCE_BASE:
        _PROVENANCE_BASE.update(provenance())
    return {
        **_PROVENANCE_BASE,
        "created_unix": time.time(),
        "config": config,
        "inputs": inputs or {},
        "timings_s": timings or {},
    }


def study_record(study: Study, out_dir: Path, plan: list[PlannedStage], status: str, started: float,
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
        "provenance": run_provenance(config=study.raw),
    }


def record_parallel(plan: list[PlannedStage]) -> None:
    """Store, per stage that ran, the stages that ran alongside it (for study.json and the log)."""
    from safeadapt.study.scheduler import overlaps

    for name, others in overlaps(plan).items():
        next(p for p in plan if p.stage.name == name).extra["parallel_with"] = others


@contextlib.contextmanager
def mark_interrupted(study: Study, out_dir: Path, plan: list[PlannedStage], started: float,
                      run_info: dict[str, Any] | None = None) -> Iterator[None]:
    """Ctrl-C: record the running stage as interrupted in study.json, then re-raise."""
    try:
        yield
    except KeyboardInterrupt:
        for p in plan:
            if p.status == "running":
                p.status = "interrupted"
        atomic_write_json(out_dir / "study.json", study_record(study, out_dir, plan, "interrupted", started, run_info))
        raise


def print_plan(plan: list[PlannedStage], console: Any, out_dir: Path) -> None:
    """The dry-run table: stage, kind, inputs, status, key."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(
        title=f"plan ({sum(p.status == 'cached' for p in plan)} cached, {sum(p.status != 'cached' for p in plan)} to "
              f"run)"
    )
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
