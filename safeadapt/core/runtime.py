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


def progress_enabled() -> bool:
    return os.environ.get("SAFEADAPT_NO_PROGRESS", "") not in ("1", "true")


_LIVE_DEPTH = 0  # how many safeadapt progress displays are open in this process


def make_progress(transient: bool = False):
    """A rich progress display. One opened while another is live (an eval inside a study stage)
    is transient: its bars vanish when done, so the outer display is not buried under them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
