"""Executing one stage, in the study process or a worker: torch threads and seeds set for it, its
output built atomically with the `_stage.json` marker written last, its library output kept in its
`log.txt`, failures made one line."""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from safeadapt import __version__
from safeadapt.core.atomic import atomic_dir, atomic_write_json, atomic_write_text
from safeadapt.core.console import capture_output
from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext
from safeadapt.study.record import MARKER, PlannedStage, dir_name, run_provenance
from safeadapt.study.types import Study


def current_threads(load: bool = False) -> int | None:
    """torch's intra-op thread count (None when torch is not imported, or not installed)."""
    import importlib.util
    import sys

    if load and "torch" not in sys.modules and importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F401
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


LOG = "log.txt"  # in each stage dir: everything the stage printed (libraries included) and logged


def stage_log(out_dir: Path, p: PlannedStage) -> Path:
    """Where a stage's output is written while it runs, and kept when it fails (DIR/logs/); a stage
    that completes moves it into its dir as `log.txt`."""
    return out_dir / "logs" / f"{dir_name(p.stage.name, p.key)}.log"


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


def execute_stage(study: Study, p: PlannedStage, out_dir: Path, inputs: dict[str, Path], threads: int | None) -> Any:
    """Run one stage (here or in a worker): torch threads set to `threads` for the stage (restored
    after), errors turned into a one-line description (with the traceback saved), Ctrl-C /
    SIGTERM into status 'interrupted'. Returns a scheduler.Outcome."""
    from safeadapt.study.scheduler import Outcome
    from safeadapt.study.stages import STAGE_KINDS

    start = time.time()
    before = current_threads(load=threads is not None)
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
        log = stage_log(out_dir, p)
        with capture_output(log):
            seed_everything(s.seed)
            fn(ctx)
        os.replace(log, tmp / LOG)
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
            "provenance": run_provenance(
                config={"kind": s.kind, "params": s.params, "seed": s.seed, "matrix": s.matrix_values,
                        **({"threads": s.threads, "threads_used": threads} if threads is not None else {})},
                inputs={k: p.input_keys[k] for k in s.inputs},
                timings={"run": round(seconds, 3)},
            ),
        }
        atomic_write_json(tmp / MARKER, marker)  # last: its presence means complete
    shutil.rmtree(p.scratch, ignore_errors=True)  # (the empty scratch/ root is removed by run_study)
    return seconds
