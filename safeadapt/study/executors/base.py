"""The executor interface of the study scheduler: where a ready stage runs. `local` (the default:
a process pool on this machine, executors/local.py) and `slurm` (one SLURM job a stage, slurm.py)."""

from __future__ import annotations

import concurrent.futures as cf
import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol

EXECUTORS = ("local", "slurm")


@dataclass
class Outcome:
    """What running one stage returned (in a worker, a SLURM job or this process)."""

    status: str  # done | failed | interrupted
    seconds: float | None = None
    error: str | None = None
    pid: int = 0
    start: float = 0.0  # unix times, measured where the stage ran
    end: float = 0.0


class StageExecutor(Protocol):
    """Runs stages for the `Scheduler`: `submit(p, fn, args)` starts `fn(*args)` for planned stage
    `p` (fn returns an Outcome) and returns a future; `outcome(fut)` is its Outcome once done (an
    executor failure, such as a dead worker or a lost job, becomes a failed Outcome); `close(kill)`
    stops it (kill: the run was interrupted, so stop what still runs)."""

    name: str

    def submit(self, p: Any, fn: Callable[..., Outcome], args: tuple[Any, ...]) -> cf.Future: ...

    def outcome(self, fut: cf.Future) -> Outcome: ...

    def close(self, kill: bool) -> None: ...


def setup_worker_threads(threads: int, plugins: list[str]) -> None:
    """In a process that runs stages (a pool worker or a SLURM job): no progress bars, the thread
    budget for the env and torch, and the study's plugins imported."""
    os.environ.update({"SAFEADAPT_NO_PROGRESS": "1", "SAFEADAPT_STAGE_THREADS": str(threads),
                       "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    try:
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    except (ImportError, RuntimeError):
        pass
    from safeadapt.study.registry import import_plugin

    for mod in plugins:
        import_plugin(mod)
