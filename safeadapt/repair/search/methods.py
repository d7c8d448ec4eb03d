"""The method table of the search: one `SearchMethod` entry per repair the search can try. Every
merge method of `safeadapt.repair.merge` is an entry (parameters `name@model` per model, or
`name` global); a repair method (`safeadapt repair`) is one `register_repair(...)` line. An entry
knows which parameters its method takes, turns (method, params) into a recipe file, and names the
one command that rebuilds it; the engine (`safeadapt.repair.search.engine`) does all I/O."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.registry import Registry


@dataclass(frozen=True)
class SearchMethod:
    name: str
    kind: str  # "merge" | "repair"
    known: Callable[[], tuple[set[str], set[str]]]  # (global params, per-model params)
    roles: tuple[str, ...] = ()  # repairs: required model roles
    optional_roles: tuple[str, ...] = ()

    def validate(self, where: str, spec: Any, params: list[str], models: dict[str, str]) -> None:
        """One-line error for a parameter the method does not take or a model it cannot find."""
        glob, per_model = self.known()
        if self.kind == "merge":
            if not spec.models:
                raise SafeAdaptError(f"{where}: models: list the models to merge (names from `models:`)")
            for m in [*spec.models, *([spec.base] if spec.base else [])]:
                if m not in models:
                    raise SafeAdaptError(f"{where}: model {m!r} is not one of models ({', '.join(models)})")
            from safeadapt.repair.merge.methods import METHODS

            if METHODS.get(self.name).needs_base and not spec.base:
                raise SafeAdaptError(f"{where}: merge method {self.name} needs `base`")
            if spec.roles:
                raise SafeAdaptError(f"{where}: `roles` is for repair methods; a merge takes `models` and `base`")
        else:
            missing = [r for r in self.roles if r not in spec.roles]
            if missing:
                raise SafeAdaptError(f"{where}: roles: {self.name} needs {', '.join(missing)}")
            for r, m in spec.roles.items():
                if r not in self.roles + self.optional_roles:
                    raise SafeAdaptError(
                        f"{where}: roles: {self.name} takes no role {r!r} (known: "
                        f"{', '.join(self.roles + self.optional_roles)})"
                    )
                if m not in models:
                    raise SafeAdaptError(f"{where}: roles.{r}: {m!r} is not one of models ({', '.join(models)})")
        for p in params:
            name, _, model = p.partition("@")
            if model:
                if name not in per_model:
                    raise SafeAdaptError(
                        f"{where}: {self.name} takes no per-model parameter {name!r} (known: "
                        f"{', '.join(sorted(per_model)) or 'none'})"
                    )
                if model not in (spec.models or []) and model != spec.base:
                    raise SafeAdaptError(f"{where}: parameter {p!r}: {model!r} is not merged by this method")
            elif name not in glob and name not in per_model:
                known = sorted(glob | {f"{k}@MODEL" for k in per_model})
                raise SafeAdaptError(
                    f"{where}: {self.name} takes no parameter {name!r} (known: {', '.join(known) or 'none'})"
                )

    def recipe(self, spec: Any, params: dict[str, Any], models: dict[str, str], dtype: str) -> dict[str, Any]:
        """The recipe file content (mergekit YAML for merges, `safeadapt repair` YAML for repairs)."""
        glob = {k: v for k, v in params.items() if "@" not in k}
        if self.kind == "repair":
            out: dict[str, Any] = {"repair_method": self.name, **{r: models[m] for r, m in spec.roles.items()},
                                   "parameters": glob, "dtype": dtype}
            return {**out, **spec.options}
        entries = []
        for m in spec.models:
            own = {k.partition("@")[0]: v for k, v in params.items() if k.endswith(f"@{m}")}
            entries.append({"model": models[m], **({"parameters": own} if own else {})})
        cfg: dict[str, Any] = {"merge_method": self.name, "models": entries, "dtype": dtype}
        if spec.base:
            cfg["base_model"] = models[spec.base]
        if glob:
            cfg["parameters"] = glob
        return {**cfg, **spec.options}

    def build(self, recipe: dict[str, Any], out: Path, *, seed: int, tokenizer: str | None) -> Path:
        """Write the repaired model to `out` (through the merge / repair engine)."""
        if self.kind == "merge":
            from safeadapt.repair.merge.api import merge

            return merge(recipe, out, seed=seed, copy_tokenizer_from=tokenizer, overwrite=True)
        from safeadapt.repair.api import repair  # type: ignore[import-not-found]  # the `safeadapt repair` engine

        return repair(recipe, out, seed=seed, overwrite=True)

    def command(self, recipe_file: str, out: str, *, seed: int, tokenizer: str | None) -> str:
        verb = "merge" if self.kind == "merge" else "repair"
        cmd = ["safeadapt", verb, recipe_file, "--out", out, "--seed", str(seed)]
        if tokenizer and self.kind == "merge":
            cmd += ["--copy-tokenizer-from", tokenizer]
        return shlex.join(cmd)


class SearchMethods(Registry[SearchMethod]):
    def get_or_error(self, name: str, where: str) -> SearchMethod:
        try:
            return self.get(name)
        except SafeAdaptError as e:
            raise SafeAdaptError(f"{where}: {e}") from None


SEARCH_METHODS = SearchMethods("search method")


def _merge_known(name: str) -> Callable[[], tuple[set[str], set[str]]]:
    def known() -> tuple[set[str], set[str]]:
        from safeadapt.repair.merge.methods import METHODS

        m = METHODS.get(name)
        return set(m.params), set(m.tensor_params)

    return known


def register_merge(name: str) -> None:
    SEARCH_METHODS.register(name)(SearchMethod(name, "merge", _merge_known(name)))


def register_repair(name: str, *, params: tuple[str, ...], roles: tuple[str, ...] = ("adapted", "aligned"),
                    optional_roles: tuple[str, ...] = ()) -> None:
    """One line per `safeadapt repair` method: its parameters and the model roles it needs."""
    SEARCH_METHODS.register(name)(SearchMethod(name, "repair", lambda: (set(params), set()), roles, optional_roles))


def _register_merges() -> None:
    from safeadapt.repair.merge.methods import METHODS

    for n in METHODS.names():
        register_merge(n)


def _register_repairs() -> None:
    """Every `safeadapt repair` method (safeadapt.repair.methods.REPAIRS), when that package exists."""
    import importlib.util

    if importlib.util.find_spec("safeadapt.repair.methods") is None:
        return
    from safeadapt.repair.methods import REPAIRS  # type: ignore[import-not-found]

    for n in REPAIRS.names():
        m = REPAIRS.get(n)
        register_repair(n, params=tuple(m.params), roles=("adapted", *m.needs), optional_roles=tuple(m.optional))


_register_merges()
_register_repairs()
