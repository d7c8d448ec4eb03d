"""Helpers for CLI commands: `user_errors` turns SafeAdaptError (and friendly OS errors) into one
line on stderr and a non-zero exit, never a traceback; `COMMANDS` holds the commands plugins add."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> "typer.Exit":
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SafeAdaptError as e:
            raise fail(e.one_line(), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except OSError as e:
            if e.errno == 28:  # ENOSPC
                raise fail(f"no space left on device writing {e.filename or 'output'}", 3) from None
            if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
                raise fail(f"{e.strerror}: {e.filename}", 2) from None
            raise

    return wrapper  # type: ignore[return-value]


#: name -> `add(app)` adding a plugin's command(s) to the main app (`@COMMANDS.register("demo")`)
COMMANDS: Registry[Callable[[typer.Typer], None]] = Registry("command")
