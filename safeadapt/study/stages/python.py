"""Stage kind "python": call a user function `fn(ctx)` named `module:function` (an importable
module) or `path/to/file.py:function` (relative to the study file). Other params reach it as
`ctx.params`. The function's source file hash is part of the cache key, so editing it re-runs."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, field_validator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import sha256_file, stable_hash
from safeadapt.study.context import StageContext
from safeadapt.study.stages import STAGE_KINDS


class PythonParams(BaseModel):
    model_config = ConfigDict(extra="allow")
    function: str

    @field_validator("function")
    @classmethod
    def _has_colon(cls, v: str) -> str:
        mod, sep, fn = v.rpartition(":")
        if not sep or not mod or not fn:
            raise ValueError("must be 'module:function' or 'file.py:function'")
        return v


def load_function(spec: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """Import `module:function` or `file.py:function` (file relative to `base_dir`)."""
    mod_name, _, fn_name = spec.rpartition(":")
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise SafeAdaptError(f"python stage function {spec!r}: file not found: {path}")
        # keyed by path and content: an edited file is re-executed, never served stale
        tag = stable_hash([str(path.resolve()), sha256_file(path)])[:20]
        name = f"_safeadapt_study_{tag}"
        module = sys.modules.get(name)
        if module is None:
            s = importlib.util.spec_from_file_location(name, path)
            assert s is not None and s.loader is not None
            module = importlib.util.module_from_spec(s)
            sys.modules[name] = module
            s.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            raise SafeAdaptError(f"python stage function {spec!r}: module not found: {e.name}") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise SafeAdaptError(f"python stage function {spec!r}: {fn_name!r} is not a function in {mod_name}")
    return fn


def _version(params: dict[str, Any], base_dir: Path | None = None) -> str:
    """Hash of the source file defining the function (so edits invalidate the cache)."""
    try:
        fn = load_function(str(params["function"]), base_dir)
        src = inspect.getsourcefile(fn)
        return f"1:{sha256_file(src)[:16]}" if src else "1"
    except (SafeAdaptError, TypeError, OSError, KeyError):
        return "1"


@STAGE_KINDS.register("python", params_model=PythonParams, version=_version)
def python_stage(ctx: StageContext) -> None:
    fn = load_function(str(ctx.params["function"]), ctx.base_dir)
    fn(ctx)
