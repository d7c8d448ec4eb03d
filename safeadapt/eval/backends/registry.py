"""The backend registry: `@BACKENDS.register("kind")` on a class `(model, **options) -> Backend`
(`safeadapt.eval.types.Backend`); every module of this package is loaded on the first lookup."""

from __future__ import annotations

from typing import Any, Callable

from safeadapt.core.registry import Registry

BackendFactory = Callable[..., Any]

#: kind -> backend class; "auto" is not a kind but a choice among them (`select_backend`)
BACKENDS: Registry[BackendFactory] = Registry("backend", builtins="safeadapt.eval.backends")
