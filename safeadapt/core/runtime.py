"""Runtime knobs: seeding, torch threads, progress bars (rich) shared by every long job."""

from __future__ import annotations

import os
import random
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_threads(n: int | None) -> int:
    """Set torch intra-op threads (None: keep). Returns the count in force."""
    import torch

    if n is not None and n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def _cpu_busy_fraction(interval: float = 0.2) -> float | None:
    """Share of the machine's CPU time spent busy over `interval` seconds (/proc/stat), or None."""
    import time

    def snap() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                vals = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return idle, sum(vals)

    a = snap()
    time.sleep(interval)
    b = snap()
    if a is None or b is None or b[1] <= a[1]:
        return None
    return 1.0 - (b[0] - a[0]) / (b[1] - a[1])


def auto_threads() -> int:
    """Torch threads for CPU work on a machine other jobs may share: the cores this process may
    use minus those already busy (the larger of the 1-minute load average and a 0.2 s /proc/stat
    sample, so a job that just started counts), at least 1. A spare core is worth a second
    thread; a busy one is not: a torch worker that has to share a core with another process makes
    every step wait for it (bench/eval_threads.py, docs/benchmarks.md "Threads under contention")."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    busy = 0.0
    try:
        busy = os.getloadavg()[0]
    except OSError:
        pass
    frac = _cpu_busy_fraction()
    if frac is not None:
        busy = max(busy, frac * (os.cpu_count() or cores))
    return max(1, min(cores, int(cores - busy + 0.25)))


def resolve_threads(threads: int | str | None) -> int | None:
    """--threads value -> torch threads: an int as given, "auto" -> `auto_threads()`, None kept."""
    if threads is None or isinstance(threads, int):
        return threads
    t = str(threads).strip().lower()
    if t == "auto":
        return auto_threads()
    if t.isdigit() and int(t) >= 1:
        return int(t)
    from safeadapt.core.errors import SafeAdaptError

    raise SafeAdaptError(f"--threads must be a positive integer or 'auto', not {threads!r}")


def progress_enabled() -> bool:
    return os.environ.get("SAFEADAPT_NO_PROGRESS", "").strip().lower() not in ("1", "true", "yes")


#: what SAFEADAPT_NO_PROGRESS=1 turns on for the libraries underneath: tqdm reads TQDM_* when
#: first imported, huggingface_hub (and through it transformers) and datasets read theirs too
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def quiet_progress() -> bool:
    """With SAFEADAPT_NO_PROGRESS=1, silence every progress bar: ours (rich, see `make_progress`),
    and the tqdm bars of transformers, datasets, huggingface_hub and any other library (through the
    environment for modules not imported yet, and their switches for those already imported).
    Called on `import safeadapt` and before each long job. Returns whether bars are silenced."""
    import sys

    if progress_enabled():
        return False
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        import transformers.utils.logging as tl

        tl.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
    tq = sys.modules.get("tqdm.std")
    if tq is not None and not getattr(tq.tqdm, "_safeadapt_quiet", False):  # imported before us
        import functools

        init = tq.tqdm.__init__

        @functools.wraps(init)
        def quiet_init(self, *a, **kw):  # type: ignore[no-untyped-def]
            kw["disable"] = True
            init(self, *a, **kw)

        tq.tqdm.__init__ = quiet_init  # subclasses (tqdm.auto, rich, notebook) call it too
        tq.tqdm._safeadapt_quiet = True
    return True


_LIVE_DEPTH = 0  # how many safeadapt progress displays are open in this process


def make_progress(transient: bool = False):
    """A rich progress display. One opened while another is live (an eval inside a study stage)
    is transient: its bars vanish when done, so the outer display is not buried under them."""
    quiet_progress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Tracked(Progress):
        def __enter__(self):  # type: ignore[override]
            global _LIVE_DEPTH
            _LIVE_DEPTH += 1
            return super().__enter__()

        def __exit__(self, *exc):  # type: ignore[override]
            global _LIVE_DEPTH
            _LIVE_DEPTH -= 1
            return super().__exit__(*exc)

    return _Tracked(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient or _LIVE_DEPTH > 0,
        disable=not progress_enabled(),
        # an inner display (an eval inside a stage run in the study process) leaves sys.stdout to
        # the stage's log capture; the outer one shows the study's own prints above its bars
        redirect_stdout=_LIVE_DEPTH == 0,
        redirect_stderr=_LIVE_DEPTH == 0,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar (disabled with SAFEADAPT_NO_PROGRESS=1)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with make_progress() as prog:
        task = prog.add_task(description, total=total)
        for x in items:
            yield x
            prog.advance(task)
