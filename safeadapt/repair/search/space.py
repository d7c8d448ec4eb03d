"""The search space YAML: named input models, how to evaluate (eval suites or a plugin's kind), the ASR
definition, search settings, and per method the parameters to search (a range, a list of choices,
a fixed value, or `one_minus` another parameter). Everything is validated before any trial runs;
a mistake is one line naming the file and the key."""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import omit_none, stable_hash
from safeadapt.repair.search.evals import SEARCH_EVALS
from safeadapt.repair.search.methods import SEARCH_METHODS

ASR_COMPONENTS = ("text_asr", "mm_asr", "jailbreak_asr")
OBJECTIVES = ("asr", "over_refusal", "helpfulness")
DIRECTIONS = {"asr": "minimize", "over_refusal": "minimize", "helpfulness": "maximize"}


class ParamSpec(BaseModel):
    """One searched parameter: `{low, high[, step, log, integer]}`, `{choices: [...]}` or `{one_minus: NAME}`."""

    model_config = ConfigDict(extra="forbid")
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[float] = None
    log: bool = False
    integer: bool = False
    choices: Optional[list[Any]] = None
    one_minus: Optional[str] = None


class MethodSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Optional[str] = None  # the merge / repair method when the entry's key is a label (e.g. home_antidote)
    models: list[str] = []  # merges: the merged models (names from `models:`), in order
    base: Optional[str] = None  # merges: base model (task-vector methods)
    roles: dict[str, str] = {}  # repairs: role (adapted, aligned, unaligned) -> model name
    params: dict[str, Union[ParamSpec, bool, int, float, str]] = {}
    options: dict[str, Any] = {}  # passed to the recipe as is (repairs: calibration, filters)


class EvalSpec(BaseModel):
    """`kind: suites` (safeadapt eval's suites and judges) or a plugin's eval kind (`evals.SEARCH_EVALS`;
    the miniature world's `kind: world` reads its data dir `data` and uses its judge)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = "suites"
    data: Optional[str] = None
    suites: list[str] = ["text-safety", "jailbreak", "over-refusal", "mm-safety", "helpfulness"]
    judge: Union[str, list[str]] = "refusal"  # several: all grade each candidate, the first is scored
    judge_options: dict[str, Any] = {}  # several judges: judge name -> its options
    datasets: dict[str, Union[str, dict[str, Any]]] = {}
    decoding: dict[str, Any] = {}
    backend: str = "hf"
    backend_options: dict[str, Any] = {}
    limit: Optional[int] = None
    bootstrap: int = 1000
    proxy_bootstrap: int = 200
    jailbreak_templates: Optional[str] = None  # a templates file (relative to the space file)

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # left at None it is not written: the space fingerprint of existing searches is unchanged
        return omit_none(handler(self), "jailbreak_templates")


class ObjectiveSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asr: Literal["mean", "max"] = "mean"  # over the available components of ASR_COMPONENTS
    asr_components: list[str] = list(ASR_COMPONENTS)
    # what counts as an attack success: the judge's `compliance` (harmful content delivered) or every
    # non-refusal (compliance + benign), for models whose harm the judge does not resolve
    attack_success: Literal["compliance", "non_refusal"] = "compliance"


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trials: int = 24
    proxy_frac: float = 0.25
    sampler: Literal["tpe", "nsga2"] = "tpe"
    startup_trials: Optional[int] = None  # TPE random start (default: about a third of the trials, 4..10)
    full_extra: int = 0  # also re-evaluate this many next-best non-front trials in full (rank check)
    keep_models: bool = False


class SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "search"
    seed: int = 0
    models: dict[str, str]
    tokenizer: Optional[str] = None
    dtype: str = "float32"
    eval: EvalSpec = EvalSpec()
    objectives: ObjectiveSpec = ObjectiveSpec()
    search: SearchSettings = SearchSettings()
    methods: dict[str, MethodSpec]


@dataclass(frozen=True)
class Param:
    """A validated parameter of one method: kind fixed | float | int | choice | one_minus."""

    name: str
    kind: str
    value: Any = None
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def grid_values(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind in ("float", "int") and self.step:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9))
            vals = [self.low + i * self.step for i in range(n + 1)]
            return [int(round(v)) for v in vals] if self.kind == "int" else [round(v, 10) for v in vals]
        raise SafeAdaptError(f"parameter {self.name!r} is a continuous range; give `step` or `choices` for a grid")


@dataclass
class Method:
    name: str
    spec: MethodSpec
    params: list[Param]

    @property
    def entry(self) -> str:
        """The registered merge / repair method (`method:`, else the entry's key)."""
        return self.spec.method or self.name

    @property
    def searched(self) -> list[Param]:
        return [p for p in self.params if p.kind in ("float", "int", "choice")]


@dataclass
class Space:
    """A validated search space; `source` is the YAML path (None for a dict)."""

    cfg: SpaceFile
    methods: dict[str, Method]
    models: dict[str, str]
    source: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def seed(self) -> int:
        return self.cfg.seed

    def fingerprint(self) -> str:
        """What the cached evaluations depend on (not the trial budget)."""
        c = self.cfg.model_dump(mode="json")
        c.pop("search", None)
        return stable_hash({"space": c, "models": self.models})

    def resolve(self, method: str, sampled: dict[str, Any]) -> dict[str, Any]:
        """Full parameter dict of a candidate: sampled values + fixed values + one_minus values."""
        m = self.methods[method]
        out: dict[str, Any] = {}
        for p in m.params:
            if p.kind == "fixed":
                out[p.name] = p.value
            elif p.kind != "one_minus":
                out[p.name] = sampled[p.name]
        for p in m.params:
            if p.kind == "one_minus":
                out[p.name] = round(1.0 - float(out[p.value]), 10)
        return out

    def suggest(self, trial: Any) -> tuple[str, dict[str, Any]]:
        """Sample (method, params) on an optuna trial; parameters are named `method.param`."""
        names = list(self.methods)
        method = trial.suggest_categorical("method", names)
        sampled: dict[str, Any] = {}
        for p in self.methods[method].searched:
            key = f"{method}.{p.name}"
            if p.kind == "choice":
                sampled[p.name] = trial.suggest_categorical(key, list(p.choices))
            elif p.kind == "int":
                sampled[p.name] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
            else:
                sampled[p.name] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
        return method, self.resolve(method, sampled)

    def grid(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (method, params) point of a fully discrete space (the exhaustive baseline)."""
        out = []
        for name, m in self.methods.items():
            ps = m.searched
            for combo in itertools.product(*[p.grid_values() for p in ps]):
                out.append((name, self.resolve(name, {p.name: v for p, v in zip(ps, combo)})))
        return out


def _param(where: str, name: str, raw: Any) -> Param:
    if not isinstance(raw, ParamSpec):
        return Param(name, "fixed", value=raw)
    given = {k for k, v in raw.model_dump().items() if v not in (None, False)}
    if raw.one_minus is not None:
        if given - {"one_minus"}:
            raise SafeAdaptError(f"{where}: parameter {name!r}: one_minus takes no other keys")
        return Param(name, "one_minus", value=raw.one_minus)
    if raw.choices is not None:
        if given - {"choices"}:
            raise SafeAdaptError(f"{where}: parameter {name!r}: give either choices or low/high, not both")
        if not raw.choices:
            raise SafeAdaptError(f"{where}: parameter {name!r}: empty choices")
        return Param(name, "choice", choices=tuple(raw.choices))
    if raw.low is None or raw.high is None:
        raise SafeAdaptError(f"{where}: parameter {name!r}: give low and high, choices, or one_minus")
    if not raw.low < raw.high:
        raise SafeAdaptError(f"{where}: parameter {name!r}: empty range (low {raw.low} must be below high {raw.high})")
    if raw.step is not None and not 0 < raw.step <= raw.high - raw.low:
        raise SafeAdaptError(f"{where}: parameter {name!r}: step {raw.step} must be in (0, high - low]")
    if raw.log and raw.low <= 0:
        raise SafeAdaptError(f"{where}: parameter {name!r}: a log range needs low > 0")
    return Param(
        name, "int" if raw.integer else "float", low=float(raw.low), high=float(raw.high), step=raw.step, log=raw.log
    )


def _load_data(space: Any) -> tuple[Any, str, Path | None]:
    if isinstance(space, dict):
        return space, "search space", None
    p = Path(space)
    if not p.is_file():
        raise SafeAdaptError(f"search space not found: {p}")
    try:
        return yaml.safe_load(p.read_text()), str(p), p
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SafeAdaptError(f"{p}: invalid YAML{f' at line {mark.line + 1}' if mark else ''}") from None


def load_space(space: dict[str, Any] | str | os.PathLike | Space, *, base_dir: Path | None = None) -> Space:
    """Parse and validate a search space (dict or YAML path). Raises SafeAdaptError, one line."""
    if isinstance(space, Space):
        return space
    data, label, path = _load_data(space)
    if not isinstance(data, dict):
        raise SafeAdaptError(f"{label}: expected a mapping with models, eval and methods")
    try:
        cfg = SpaceFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise SafeAdaptError(
            f"{label}: {loc + ': ' if loc else ''}{err['msg'].removeprefix('Value error, ')}"
        ) from None
    bdir = base_dir or (path.parent if path else Path.cwd())
    models = {k: _resolve_path(v, bdir) for k, v in cfg.models.items()}
    if not cfg.methods:
        raise SafeAdaptError(f"{label}: methods: list at least one method")
    if cfg.tokenizer is not None and cfg.tokenizer not in models:
        raise SafeAdaptError(f"{label}: tokenizer: {cfg.tokenizer!r} is not one of models ({', '.join(models)})")
    s = cfg.search
    if s.trials < 1:
        raise SafeAdaptError(f"{label}: search.trials must be >= 1")
    if not 0 < s.proxy_frac <= 1:
        raise SafeAdaptError(f"{label}: search.proxy_frac must be in (0, 1]")
    bad = sorted(set(cfg.objectives.asr_components) - set(ASR_COMPONENTS))
    if bad or not cfg.objectives.asr_components:
        raise SafeAdaptError(f"{label}: objectives.asr_components: choose from {', '.join(ASR_COMPONENTS)}")
    if cfg.eval.kind != "suites":
        if cfg.eval.kind not in SEARCH_EVALS:
            known = ", ".join(["suites", *SEARCH_EVALS.names()])
            raise SafeAdaptError(f"{label}: eval.kind: unknown kind {cfg.eval.kind!r}; known: {known}")
        if SEARCH_EVALS.get(cfg.eval.kind).needs_data and not cfg.eval.data:
            raise SafeAdaptError(f"{label}: eval.data: a data directory is required for kind {cfg.eval.kind}")
    methods: dict[str, Method] = {}
    for mname, mspec in cfg.methods.items():
        where = f"{label}: methods.{mname}"
        entry = SEARCH_METHODS.get_or_error(mspec.method or mname, where)
        params = [_param(where, k, v) for k, v in mspec.params.items()]
        by_name = {p.name: p for p in params}
        for p in params:
            if p.kind == "one_minus" and (p.value not in by_name or by_name[p.value].kind == "one_minus"):
                raise SafeAdaptError(
                    f"{where}: parameter {p.name!r}: one_minus names {p.value!r}, not a parameter of this method"
                )
        entry.validate(where, mspec, list(by_name), models)
        methods[mname] = Method(mname, mspec, params)
    return Space(cfg, methods, models, source=path, base_dir=bdir)


def _resolve_path(ref: str, base: Path) -> str:
    q = Path(os.path.expanduser(ref))
    if q.is_absolute():
        return str(q)
    cand = base / q
    return str(cand.resolve()) if cand.exists() else ref  # else a hub id (offline cache)
