"""The output policy: one rich Console for everything safeadapt shows, library logging and progress
bars quiet unless --verbose, and each study stage's library output captured into its log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Iterator

VERBOSE_ENV = "SAFEADAPT_VERBOSE"  # set by `safeadapt --verbose`; spawned stage workers inherit it
#: loggers of the libraries underneath, held at WARNING unless --verbose
LIBRARY_LOGGERS = ("transformers", "datasets", "huggingface_hub", "accelerate", "trl", "peft", "torch",
                   "torchvision", "urllib3", "filelock", "fsspec", "PIL", "matplotlib")
#: what libraries read when first imported (the switches below cover those imported already)
QUIET_LIBRARY_ENV = {"TRANSFORMERS_VERBOSITY": "warning", "DATASETS_VERBOSITY": "warning",
                     "HF_HUB_VERBOSITY": "warning", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                     "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
#: library warnings that say nothing to a safeadapt user (they still reach a stage's log.txt)
NOISE_WARNINGS = (
    r".*torchvision.*",  # transformers' "image processor ... torchvision is not available" notes
)


_OWNER: int | None = None  # the process whose console is the user's (the CLI's, the study's)


def claim_console() -> None:
    """Mark this process as the one whose console the user sees (the CLI, a study run). A stage
    captured here keeps the console for the study's rows; a stage in a worker or a batch job (a
    process that never claimed it) sends even its console prints to its log."""
    global _OWNER
    _OWNER = os.getpid()


def console() -> Any:
    """The one rich Console of the process (rich's own global console, so progress displays that are
    not handed one draw on it too). Commands print their progress, tables and paths through it."""
    import rich

    return rich.get_console()


def say(message: str) -> None:
    """One plain line on the console (a path, a status): no markup, no highlighting, never wrapped,
    so it reads (and greps) the same as print's."""
    console().print(message, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def wide(min_width: int = 120) -> Iterator[Any]:
    """The console at least `min_width` columns wide for the block (tables stay unwrapped when the
    output is a pipe, which rich sizes to 80), restored after."""
    con = console()
    old = con._width  # rich keeps None for "detect"
    con.width = max(con.width, min_width)
    try:
        yield con
    finally:
        con._width = old


def set_verbose(verbose: bool) -> None:
    """`--verbose`: library logging at INFO with their progress bars, here and in stage workers
    (SAFEADAPT_VERBOSE=1 does the same); otherwise quiet them. Claims the console (the CLI's)."""
    claim_console()
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    quiet_libraries()


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")


def quiet_libraries() -> bool:
    """Set the libraries' logging to WARNING and their progress bars off (transformers, datasets,
    huggingface_hub, accelerate, TRL, tqdm), each through its own switch, unless --verbose; filter
    the warnings in NOISE_WARNINGS. Idempotent; called by the CLI and at each stage's start.
    Returns whether the libraries are quiet."""
    if is_verbose():
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
        if "transformers" in sys.modules:
            import transformers.utils.logging as tl

            tl.set_verbosity_info()
            tl.enable_progress_bar()
        return False
    for k, v in QUIET_LIBRARY_ENV.items():
        os.environ.setdefault(k, v)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    if "transformers" in sys.modules:
        import transformers.utils.logging as tl

        tl.set_verbosity_warning()
        tl.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets.utils.logging as dl

        dl.set_verbosity_warning()
        dl.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils as hu

        hu.disable_progress_bars()
        hu.logging.set_verbosity_warning()
    for name in NOISE_LOGGERS:
        if _FILTER not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_FILTER)
    return True


class _NoiseFilter(logging.Filter):
    """Drops the library log records matching NOISE_WARNINGS on the console (transformers logs its
    torchvision note at WARNING on every image processor); inside a stage capture they reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _CAPTURING or is_verbose():
            return True
        import re

        msg = record.getMessage()
        return not any(re.match(p, msg, re.DOTALL) for p in NOISE_WARNINGS)


_FILTER = _NoiseFilter()
_CAPTURING = False  # inside capture_output: everything goes to the stage log
#: the library loggers that emit NOISE_WARNINGS (a logger's filter applies to its own records)
NOISE_LOGGERS = ("transformers.utils.import_utils",)


def quiet_trainer(trainer: Any) -> Any:
    """Unless --verbose, drop a transformers Trainer's console callbacks: its tqdm training bar
    (ProgressCallback, which tqdm.write()s each log dict) and PrinterCallback (which print()s them,
    `{'train_runtime': ...}` among them). Logs still reach `trainer.state.log_history`."""
    if not is_verbose():
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for cb in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(cb)
    return trainer


def tail(path: Path, lines: int = 15) -> list[str]:
    """The last `lines` non-empty lines of a log file (progress-bar carriage returns folded)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            last: deque[str] = deque(maxlen=lines)
            for line in f:
                line = line.rstrip("\n").rsplit("\r", 1)[-1].rstrip()
                if line:
                    last.append(line)
    except OSError:
        return []
    return list(last)


@contextlib.contextmanager
def capture_output(log_path: Path) -> Iterator[Path]:
    """Send everything printed inside the block to `log_path` (truncated first): Python's
    sys.stdout / sys.stderr, the process's file descriptors 1 and 2 (C extensions, subprocesses),
    warnings and logging records. The console keeps writing where it wrote before (a private copy
    of the terminal's descriptor), so the study's own progress stays on screen."""
    global _CAPTURING
    quiet_libraries()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    con = console()
    old_file, shown = con._file, con.file  # what the console writes to now (None: sys.stdout, live)
    old_out, old_err = sys.stdout, sys.stderr
    for s in (old_out, old_err, shown):
        with contextlib.suppress(Exception):
            s.flush()
    fh = open(log_path, "w", encoding="utf-8", buffering=1, errors="replace")
    saved: dict[int, int] = {}
    private = None
    moved: list[tuple[logging.StreamHandler, Any]] = []
    root_handler = logging.StreamHandler(fh)
    root_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved[fd] = os.dup(fd)
        try:
            shown_fd = shown.fileno()
        except Exception:  # noqa: BLE001 - a StringIO, a test runner's buffer: no descriptor
            shown_fd = None
        if _OWNER != os.getpid():  # a worker's console is not the user's: into the log with the rest
            con.file = fh
        elif shown_fd in saved:  # the console writes to fd 1/2, about to point at the log: keep a copy
            private = os.fdopen(os.dup(saved[shown_fd]), "w", encoding=getattr(shown, "encoding", None) or "utf-8",
                                buffering=1, errors="replace")
            con.file = private
        else:
            con.file = shown
        for fd in saved:
            os.dup2(fh.fileno(), fd)
        sys.stdout = sys.stderr = fh
        for logger in [logging.getLogger()] + [v for v in logging.root.manager.loggerDict.values()
                                               if isinstance(v, logging.Logger)]:
            for h in logger.handlers:
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) \
                        and getattr(h, "stream", None) in (old_out, old_err, sys.__stdout__, sys.__stderr__):
                    moved.append((h, h.setStream(fh)))
        logging.getLogger().addHandler(root_handler)
        _CAPTURING = True
        with warnings.catch_warnings():  # a stage's own filters end with it
            yield log_path
    finally:
        _CAPTURING = False
        logging.getLogger().removeHandler(root_handler)
        for h, stream in moved:
            h.setStream(stream)
        sys.stdout, sys.stderr = old_out, old_err
        with contextlib.suppress(Exception):
            fh.flush()
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        con._file = old_file
        if private is not None:
            with contextlib.suppress(Exception):
                private.flush()
            private.close()
        fh.close()
