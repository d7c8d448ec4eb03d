"""Plugins: modules that register judges, suites, backends, methods, stage kinds, search eval kinds,
report checks or commands on the registries. `load_plugins()` runs once, on the first registry lookup.

Sources, in order: each sub-package of safeadapt with a `plugin.py` (bundled plugins, such as the
miniature world), then every entry point of the group `safeadapt.plugins` (installed packages). An
entry point names a module (importing it registers its things) or a callable (called once, no
arguments). A plugin that fails to load is a one-line SafeAdaptError naming it."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from pathlib import Path

from safeadapt.core.errors import SafeAdaptError

GROUP = "safeadapt.plugins"
_loaded: list[str] | None = None


def bundled_plugins() -> list[tuple[str, str]]:
    """(name, module) of each safeadapt sub-package that holds a `plugin.py`."""
    root = Path(__file__).resolve().parent.parent
    return [(d.name, f"safeadapt.{d.name}.plugin") for d in sorted(root.iterdir())
            if d.is_dir() and (d / "__init__.py").is_file() and (d / "plugin.py").is_file()]


def plugin_sources() -> list[tuple[str, str]]:
    """(name, "module" or "module:attr") of every plugin, bundled first, each module once."""
    out = bundled_plugins()
    seen = {v for _, v in out}
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        if ep.value not in seen:
            out.append((ep.name, ep.value))
            seen.add(ep.value)
    return out


def _load_one(name: str, value: str) -> None:
    module, _, attr = value.partition(":")
    try:
        obj = importlib.import_module(module.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
    except Exception as e:  # an installed plugin must not break the tool with a traceback
        raise SafeAdaptError(f"plugin {name!r} ({value}) failed to load: {type(e).__name__}: {e}") from None
    if callable(obj) and not inspect.ismodule(obj):
        obj()


def load_plugins() -> list[str]:
    """Load every plugin once (later calls return at once); returns the names loaded."""
    global _loaded
    if _loaded is not None:
        return list(_loaded)
    _loaded = []
    try:
        for name, value in plugin_sources():
            _load_one(name, value)
            _loaded.append(name)
    except BaseException:
        _loaded = None  # retried on the next lookup
        raise
    return list(_loaded)
