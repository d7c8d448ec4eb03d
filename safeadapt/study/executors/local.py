"""The `local` executor: a study's stages in worker processes of a spawn-context
`ProcessPoolExecutor` on this machine (`jobs=1`: in this process). Workers die with the study
process (PR_SET_PDEATHSIG plus a watchdog), so a SIGKILLed run leaves no orphan writing stage dirs."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from typing import Any, Callable, Iterator

from safeadapt.study.executors.base import Outcome, setup_worker_threads

BROKEN = "a worker process died while it ran (killed, or out of memory?); the stage did not finish"


# ----------------------------------------------------------------------------------- worker side


def _die_with_parent(parent: int) -> None:
    """Exit when the study process dies: PR_SET_PDEATHSIG (Linux) and a polling watchdog."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="safeadapt-parent-watch", daemon=True).start()


_BUSY = False  # a stage is running in this worker


def _sigterm(signum: int, frame: Any) -> None:
    if not _BUSY:
        os._exit(128 + signum)
    raise KeyboardInterrupt  # unwinds the stage: its temp dir is removed, scratch kept


def call_stage(fn: Callable[..., Any], *args: Any) -> Any:
    """What a worker runs for one stage: `fn(*args)`, marked busy (SIGTERM then unwinds it)."""
    global _BUSY
    _BUSY = True
    try:
        return fn(*args)
    finally:
        _BUSY = False


def worker_init(threads: int, parent: int, plugins: list[str]) -> None:
    """Initializer of each worker: die with the parent, signals, thread budget, no progress bars, plugins."""
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the study process, which stops us
    setup_worker_threads(threads, plugins)  # only the study process draws progress




# ----------------------------------------------------------------------------------- study side


class _Inline(cf.Executor):
    """`jobs=1`: run each submitted stage right here (futures complete on submit)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:  # type: ignore[override]
        f: cf.Future = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - delivered through the future
            f.set_exception(e)
        return f



class LocalExecutor:
    """`jobs` worker processes with `threads` torch threads each (jobs <= 1: this process); a pool
    broken by a dead worker fails the stage it ran and is replaced before the next submit."""

    name = "local"

    def __init__(self, jobs: int, threads: int, plugins: list[str] | None = None) -> None:
        self.jobs, self.threads, self.plugins = jobs, threads, list(plugins or [])
        self.broken = False
        self.pool = self._new()

    def _new(self) -> cf.Executor:
        if self.jobs <= 1:
            return _Inline()
        ctx = multiprocessing.get_context("spawn")
        ex = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=worker_init,
                                    initargs=(self.threads, os.getpid(), self.plugins))
        # workers are spawned lazily, one per submit finding none idle, and take seconds to start
        # (imports): start them all now, in parallel, so the first parallel stages do not queue
        with _plain_main():
            for _ in range(self.jobs):
                ex.submit(os.getpid)
        return ex

    def _restart(self) -> None:
        _shutdown(self.pool, kill=True)
        self.pool, self.broken = self._new(), False

    def submit(self, p: Any, fn: Callable[..., Outcome], args: tuple[Any, ...]) -> cf.Future:
        if self.broken:
            self._restart()
        try:
            return self.pool.submit(call_stage, fn, *args)
        except cf.process.BrokenProcessPool:  # a worker died while idle
            self._restart()
            return self.pool.submit(call_stage, fn, *args)

    def outcome(self, fut: cf.Future) -> Outcome:
        try:
            return fut.result()
        except cf.process.BrokenProcessPool:  # a worker died under it (OOM killer?)
            self.broken = True
            return Outcome("failed", error=BROKEN)

    def close(self, kill: bool) -> None:
        _shutdown(self.pool, kill=kill)


@contextlib.contextmanager
def _plain_main() -> Iterator[None]:
    """Spawned workers re-run the parent's __main__ (a script path, `<stdin>`, an unguarded user
    script) unless it looks absent; ours only run safeadapt functions, so hide it while spawning."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _shutdown(ex: cf.Executor, *, kill: bool) -> None:
    """Stop the pool; on an interrupt, SIGTERM the workers (their stage unwinds) first."""
    if kill and isinstance(ex, cf.ProcessPoolExecutor):
        for proc in list((getattr(ex, "_processes", None) or {}).values()):
            try:
                proc.terminate()
            except (OSError, ValueError, AttributeError):
                pass
    ex.shutdown(wait=True, cancel_futures=True)

