"""Name -> object registries, the one plugin contract: `@REG.register("name", **meta)` on a function
or class (metadata set on it as attributes), built-ins loaded lazily from a package on first lookup."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Generic, Iterator, TypeVar

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.plugins import load_plugins

T = TypeVar("T")


def load_builtins(package: str, skip: Callable[[str], bool] | None = None) -> list[str]:
    """Import `package` and, when it is a package, every module in it (not `_private` ones, nor
    those `skip(name)` rejects), so their `register` lines run. Returns the modules imported."""
    pkg = importlib.import_module(package)
    done = [package]
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
        if info.name.startswith("_") or (skip is not None and skip(info.name)):
            continue
        importlib.import_module(f"{package}.{info.name}")
        done.append(f"{package}.{info.name}")
    return done


class Registry(Generic[T]):
    """`Registry(kind, builtins="pkg.path")`: `register(name, **meta)` records an object and its
    metadata (each `meta` item is also set on the object as an attribute, e.g. a stage kind's
    `params_model` and `version`); with `name_attr`, the name too (a suite's `name`). `builtins`
    (a package, or a module) is imported on the first lookup, and the plugins with it; `skip` leaves modules of it out.
    Unknown names give a one-line SafeAdaptError listing the known ones."""

    def __init__(self, kind: str, builtins: str | None = None, *, name_attr: str | None = None,
                 skip: Callable[[str], bool] | None = None) -> None:
        self.kind = kind
        self.builtins = builtins
        self.name_attr = name_attr
        self._skip = skip
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._loaded = builtins is None

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            attrs = {self.name_attr: name, **meta} if self.name_attr else meta
            for key, value in attrs.items():
                setattr(obj, key, value)
            self._items[name] = obj
            self._meta[name] = dict(meta)
            return obj

        return deco

    def load(self) -> None:
        """Import the built-ins, then the plugins (`core.plugins`), once each; a failed import is
        retried on the next lookup."""
        if not self._loaded and self.builtins is not None:
            self._loaded = True  # set first: a built-in module may look names up while it loads
            try:
                load_builtins(self.builtins, self._skip)
            except BaseException:
                self._loaded = False
                raise
        load_plugins()

    def get(self, name: str) -> T:
        self.load()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise SafeAdaptError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata `name` was registered with."""
        self.get(name)
        return dict(self._meta[name])

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self.load()
        return iter(sorted(self._items.items()))

    def unregister(self, name: str) -> None:
        """Remove an entry (tests registering temporary ones clean up with this)."""
        self._items.pop(name, None)
        self._meta.pop(name, None)

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items
