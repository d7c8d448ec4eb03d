"""The stage-kind registry type: a `Registry` of `fn(ctx: StageContext) -> None` whose metadata
(`params_model`, `version`) the engine reads; `import_plugin` imports a study's `plugins:` modules."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.registry import Registry

StageFn = Callable[..., None]


def import_plugin(module: str, *, where: str = "") -> None:
    """Import a plugin module that registers stage kinds; one-line error when it is missing."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise SafeAdaptError(f"{where}plugin module {module!r} not found") from None
        raise SafeAdaptError(f"{where}plugin module {module!r} failed to import: {e}") from None
    except (ImportError, SyntaxError) as e:
        raise SafeAdaptError(f"{where}plugin module {module!r} failed to import: {type(e).__name__}: {e}") from None


class StageKindRegistry(Registry[StageFn]):
    """`@STAGE_KINDS.register("kind", params_model=..., version=...)` on `fn(ctx) -> None`:
    `params_model` (a pydantic model validating `params`) and `version` (a string, or a callable
    `(params, base_dir) -> str`, folded into the cache key: bump it when the kind's behaviour
    changes) are both optional."""

    def resolve(self, name: str) -> StageFn:
        return self.get(name)

    def version_of(self, name: str, params: dict[str, Any], base_dir: Path) -> str:
        v = getattr(self.resolve(name), "version", "1")
        return str(v(params, base_dir) if callable(v) else v)
