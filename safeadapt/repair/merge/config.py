"""Merge configuration in mergekit's YAML format (merge_method, base_model, models[].model,
models[].parameters, parameters, dtype, out_dtype, tokenizer_source), validated with pydantic, and
mergekit's parameter evaluation: scalar, per-layer gradient (linear interpolation over depth), or
a list of `{filter, value}` conditions matched as substrings of the tensor name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.methods import METHODS, REQUIRED, MergeMethod

Scalar = Union[bool, int, float, str]
Gradient = list[Union[int, float]]


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Union[Scalar, Gradient]
    filter: Optional[str] = None


Setting = Union[Scalar, Gradient, list[Condition], Condition]


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    parameters: Optional[dict[str, Setting]] = None


class MergeConfig(BaseModel):
    """mergekit-compatible merge recipe (plus `vision_source`, a safeadapt extension).

    dtype semantics are mergekit 0.1.5's: `dtype` is the compute dtype every input is cast to (unset:
    the inputs' own dtype, which must then agree); `out_dtype` is what is written (unset: the
    compute dtype). For fp32 arithmetic on bf16 checkpoints write `dtype: float32, out_dtype: bfloat16`."""

    model_config = ConfigDict(extra="forbid")
    merge_method: str
    base_model: Optional[str] = None
    models: Optional[list[ModelEntry]] = None
    slices: Optional[Any] = None
    parameters: Optional[dict[str, Setting]] = None
    dtype: Optional[str] = None
    out_dtype: Optional[str] = None
    tokenizer_source: Optional[str] = None
    tokenizer: Optional[dict[str, Any]] = None
    chat_template: Optional[str] = None
    modules: Optional[Any] = None
    vision_source: Optional[str] = None
    name: Optional[str] = None

    @model_validator(mode="after")
    def _check(self) -> "MergeConfig":
        if self.slices is not None or self.modules is not None:
            key = "slices" if self.slices is not None else "modules"
            raise ValueError(
                f"`{key}` (layer stacking / frankenmerges) is not supported; use `models` with per-layer gradients or "
                f"filters"
            )
        if self.tokenizer is not None:  # mergekit's newer form; only `source` is supported
            extra = sorted(set(self.tokenizer) - {"source"})
            if extra:
                raise ValueError(
                    f"tokenizer: only `source` is supported (got {', '.join(extra)}); adding tokens is not"
                )
            if self.tokenizer_source is not None:
                raise ValueError("set either tokenizer_source or tokenizer.source, not both")
            self.tokenizer_source = str(self.tokenizer["source"])
            self.tokenizer = None
        if self.chat_template is not None and "{%" not in self.chat_template and "{{" not in self.chat_template:
            raise ValueError(
                "chat_template must be a Jinja template string; named templates are not supported (the tokenizer "
                "source's template is used when unset)"
            )
        if not self.models:
            raise ValueError("`models` must list at least one model")
        return self

    def method(self) -> MergeMethod:
        return METHODS.get(self.merge_method)

    def model_order(self) -> list[str]:
        """mergekit's input order: `models` in order, then `base_model` if it was not listed."""
        order = [m.model for m in self.models or []]
        if self.base_model and self.base_model not in order:
            order.append(self.base_model)
        return order

    def entry(self, model: str) -> ModelEntry | None:
        for m in self.models or []:
            if m.model == model:
                return m
        return None


def load_config(config: dict[str, Any] | str | os.PathLike | MergeConfig) -> tuple[MergeConfig, Path | None]:
    """Parse a dict, a YAML path or a YAML string. Returns (config, directory of the YAML file)."""
    if isinstance(config, MergeConfig):
        return config, None
    data, where, label = read_yaml_mapping(config, "merge config", "merge_method and models")
    cfg = validated(MergeConfig, data, label)
    method = cfg.method()
    _check_parameters(cfg, method, label)
    return cfg, where


def read_yaml_mapping(
    config: dict[str, Any] | str | os.PathLike, what: str, expect: str
) -> tuple[dict[str, Any], Path | None, str]:
    """A recipe as a dict from a dict, a YAML file or YAML text -> (data, its directory, label for errors)."""
    where: Path | None = None
    label = what
    if isinstance(config, dict):
        data: Any = config
    else:
        p = Path(config)
        text: str
        if "\n" not in str(config) and p.exists():
            if p.is_dir():
                raise SafeAdaptError(f"{what} {p} is a directory, expected a YAML file")
            text, where, label = p.read_text(), p.parent, str(p)
        elif (
            isinstance(config, str)
            and ("\n" in config or ":" in config)
            and not str(config).endswith((".yaml", ".yml"))
        ):
            text = config
        else:
            raise SafeAdaptError(f"{what} not found: {config}")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise SafeAdaptError(f"{label}: invalid YAML{at}") from None
    if not isinstance(data, dict):
        raise SafeAdaptError(f"{label}: expected a mapping with {expect}")
    return data, where, label


def validated(model: Any, data: dict[str, Any], label: str) -> Any:
    """`model.model_validate(data)` with the first error as one SafeAdaptError line."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise SafeAdaptError(f"{label}: {loc + ': ' if loc else ''}{msg}") from None


def _check_parameters(cfg: MergeConfig, method: MergeMethod, label: str) -> None:
    known_global, known_tensor = set(method.params), set(method.tensor_params)
    known = sorted(known_global | known_tensor)
    for name in (cfg.parameters or {}):
        if name not in known_global and name not in known_tensor:
            raise SafeAdaptError(
                f"{label}: unknown parameter {name!r} for merge method {method.name} (known: {', '.join(known)})"
            )
    for m in cfg.models or []:
        for name in (m.parameters or {}):
            if name in known_global:
                raise SafeAdaptError(
                    f"{label}: {name!r} is a global parameter of {method.name}; set it under top-level `parameters`, "
                    f"not for model {m.model}"
                )
            if name not in known_tensor:
                raise SafeAdaptError(
                    f"{label}: unknown parameter {name!r} for model {m.model} with merge method {method.name} (known: "
                    f"{', '.join(sorted(known_tensor)) or 'none'})"
                )
    if method.needs_base and not cfg.base_model:
        raise SafeAdaptError(f"{label}: merge method {method.name} needs base_model")
    if cfg.merge_method == "linear" and cfg.base_model and cfg.base_model not in [m.model for m in cfg.models or []]:
        raise SafeAdaptError(
            f"{label}: linear does not use base_model; list {cfg.base_model} under models with a weight"
        )


def evaluate_setting(setting: Any, tensor_names: tuple[str, ...], t: float) -> Any:
    """mergekit semantics: scalars as-is; numeric lists interpolate at depth t in [0, 1]; lists of
    conditions return the first whose filter is empty, '*' or a substring of the tensor name."""
    if isinstance(setting, Condition):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if isinstance(setting, list):
        if not setting:
            return None
        if all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting):
            scaled = t * (len(setting) - 1)
            i0 = int(scaled)
            i1 = min(len(setting) - 1, i0 + 1)
            frac = scaled - i0
            return (1 - frac) * setting[i0] + frac * setting[i1]
        if all(isinstance(e, Condition) for e in setting):
            for cond in setting:
                if cond.filter in (None, "*") or any(cond.filter in n for n in tensor_names if n):
                    return evaluate_setting(cond.value, tensor_names, t)
            return None
    raise SafeAdaptError(f"unexpected parameter value {setting!r}")


def resolve_params(cfg: MergeConfig, method: MergeMethod, models: list[str], base: str | None,
                   tensor_names: tuple[str, ...], t: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Global and per-model parameter values for one tensor (lookup: model, then global, then default)."""
    gparams: dict[str, Any] = {}
    glob = cfg.parameters or {}
    for name, default in method.params.items():
        v = evaluate_setting(glob[name], tensor_names, t) if name in glob else None
        if v is None:
            if default is REQUIRED:
                raise SafeAdaptError(
                    f"merge method {method.name}: missing required parameter {name!r} for tensor {tensor_names[0]}"
                )
            v = default
        gparams[name] = v
    tparams: list[dict[str, Any]] = []
    for model in models:
        entry = cfg.entry(model)
        own = (entry.parameters or {}) if entry else {}
        d: dict[str, Any] = {}
        for name, default in method.tensor_params.items():
            v = evaluate_setting(own[name], tensor_names, t) if name in own else None
            if v is None and name in glob:
                v = evaluate_setting(glob[name], tensor_names, t)
            if v is None:
                if default is REQUIRED and model != base:
                    raise SafeAdaptError(
                        f"merge method {method.name}: missing required parameter {name!r} for model {model} (tensor "
                        f"{tensor_names[0]})"
                    )
                v = None if default is REQUIRED else default
            d[name] = v
        tparams.append(d)
    return gparams, tparams


def dump_yaml(cfg: MergeConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(exclude_none=True, mode="json"), sort_keys=False)
