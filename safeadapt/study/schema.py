"""Study YAML schema: the pydantic models of a study file, the validated `Study` / `Stage` /
`InputRef` it becomes, and `load_study` (parse -> validate -> vars, profile, --set -> expand per seed;
helpers in `parsing` and `expand`). Every problem is a one-line `SafeAdaptError` before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.parsing import parse_yaml, pydantic_msg, where_prefix


class PathInput(BaseModel):
    """An input that is an existing file/dir rather than a stage (fingerprinted into the key)."""

    model_config = ConfigDict(extra="forbid")
    path: str


InputSpec = Union[str, list[str], PathInput]


class StageSpec(BaseModel):
    """One entry under `stages:` (before matrix expansion)."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    inputs: dict[str, InputSpec] = {}
    params: dict[str, Any] = {}
    seed: int | str | None = None  # a string may be a `${var}` (e.g. a matrix over seeds)
    matrix: dict[str, list[Any]] | list[dict[str, Any]] | None = None
    description: str = ""
    threads: int | str | None = None  # torch threads the stage runs with (a `${var}` allowed)
    memory_gb: float | str | None = None  # the stage's expected peak RAM (scheduling only; a `${var}` allowed)
    gpus: int | str | None = None  # GPUs of the stage's SLURM job (default: its `launch:` processes)
    slurm: dict[str, Any] | None = None  # SLURM job settings (executors/resources.py: SlurmSpec)


class StudySpec(BaseModel):
    """The whole study file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    seed: int = 0
    description: str = ""
    plugins: list[str] = []
    seeds: list[int] = []  # replicate the study over these seeds (shared stages run once)
    vars: dict[str, Any] = {}
    profiles: dict[str, dict[str, Any]] = {}
    slurm: dict[str, Any] | None = None  # SLURM settings of every stage's job (a stage's own block wins)
    stages: dict[str, StageSpec]


@dataclass
class InputRef:
    """A bound input: an upstream stage name, or an external path."""

    stage: str | None = None
    path: Path | None = None

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage} if self.stage is not None else {"path": str(self.path)}


@dataclass
class Stage:
    """A concrete stage after expansion and validation."""

    name: str
    kind: str
    params: dict[str, Any]
    inputs: dict[str, InputRef]
    seed: int
    template: str  # the key under `stages:` it came from
    matrix_values: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    description: str = ""
    replicate: int | None = None  # the study seed of this copy (None: one run, or shared by all seeds)
    threads: int | None = None  # declared torch threads (None: the scheduler's cores // jobs)
    memory_gb: float | None = None  # declared peak RAM in GiB (None: the per-job budget)
    gpus: int | None = None  # declared GPUs (SLURM jobs; None: the processes of `launch:`, else none)
    slurm: dict[str, Any] = field(default_factory=dict)  # the stage's own `slurm:` block (validated)
    base_name: str = ""  # the name without the replicate suffix (names the stage's output dir)

    @property
    def upstream(self) -> list[str]:
        return [r.stage for r in self.inputs.values() if r.stage is not None]


@dataclass
class Study:
    """A validated study: stages in deterministic topological order."""

    name: str
    seed: int
    file: Path | None
    base_dir: Path
    stages: list[Stage]
    vars: dict[str, Any]
    profile: str | None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)  # replicate seeds (empty: one run with `seed`)
    slurm: dict[str, Any] = field(default_factory=dict)  # the study's `slurm:` block (validated)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise SafeAdaptError(f"study {self.name!r} has no stage {name!r}; stages: {', '.join(s.name for s in self.stages)}")


# ------------------------------------------------------------------------------------------ loading


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`--set name=value` pairs; values parse as YAML scalars/lists (`3`, `0.5`, `true`, `[a, b]`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SafeAdaptError(f"--set {item!r}: expected name=value")
        try:
            out[name.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[name.strip()] = value
    return out


def load_study(
    source: str | Path | dict[str, Any],
    *,
    overrides: dict[str, Any] | None = None,
    profile: str | None = None,
    seed: int | None = None,
    seeds: list[int] | None = None,
) -> Study:
    """Parse and fully validate a study (a YAML path, or an already-loaded dict)."""
    file: Path | None = None
    lines: dict[str, int] = {}
    if isinstance(source, dict):
        data: Any = source
        base_dir = Path.cwd()
    else:
        file = Path(source)
        if not file.is_file():
            raise SafeAdaptError(f"study file not found: {file}")
        data, lines = parse_yaml(file.read_text(encoding="utf-8"), file)
        base_dir = file.resolve().parent
    top = where_prefix(file, None)
    if not isinstance(data, dict):
        raise SafeAdaptError(f"{top}a study must be a mapping with 'name' and 'stages'")
    # plugins first: they register kinds that the validation below must know
    from safeadapt.study.registry import import_plugin
    from safeadapt.study.stages import STAGE_KINDS

    plugins = data.get("plugins") or []
    if isinstance(plugins, list):
        for mod in plugins:
            if isinstance(mod, str):
                import_plugin(mod, where=top)
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        line = None
        if len(err["loc"]) >= 2 and err["loc"][0] == "stages":
            line = lines.get(str(err["loc"][1]))
        raise SafeAdaptError(f"{where_prefix(file, line)}{pydantic_msg(e)}") from None
    if not spec.stages:
        raise SafeAdaptError(f"{top}the study has no stages")

    # variables: vars < profile < --set ; plus the seed
    env: dict[str, Any] = dict(spec.vars)
    if profile is not None:
        if profile not in spec.profiles:
            known = ", ".join(sorted(spec.profiles)) or "(none)"
            raise SafeAdaptError(f"{top}unknown profile {profile!r}; known: {known}")
        env.update(spec.profiles[profile])
    for k in overrides or {}:
        if k not in env and k != "seed":
            known = ", ".join(sorted(spec.vars)) or "(none)"
            raise SafeAdaptError(f"{top}--set {k}: not a variable of this study; vars: {known}")
    env.update({k: v for k, v in (overrides or {}).items() if k != "seed"})
    study_seed = seed if seed is not None else int((overrides or {}).get("seed", spec.seed))
    # seeds: the `seeds` argument (--seeds) > a single seed argument (--seed, --set seed=) > `seeds:`
    one_seed = seed is not None or "seed" in (overrides or {})
    if seeds is not None and one_seed:
        raise SafeAdaptError(f"{top}give either --seed or --seeds, not both")
    from safeadapt.study.executors.resources import parse_slurm
    from safeadapt.study.expand import expand_stages, substitute, toposort
    from safeadapt.study.replicates import merge_replicates, parse_seeds

    seed_list = parse_seeds(seeds if seeds is not None else (None if one_seed else spec.seeds), top)
    if len(seed_list) > 1:
        ordered = toposort(merge_replicates({sd: expand_stages(spec, env, sd, file, lines, base_dir) for sd in seed_list}), file)
        study_seed = seed_list[0]
    else:
        study_seed = seed_list[0] if seed_list else study_seed
        ordered = expand_stages(spec, env, study_seed, file, lines, base_dir)
    return Study(
        name=spec.name,
        seed=study_seed,
        file=file.resolve() if file else None,
        base_dir=base_dir,
        stages=ordered,
        vars={k: v for k, v in env.items() if k != "seed"},
        profile=profile,
        description=spec.description,
        raw=data,
        seeds=seed_list if len(seed_list) > 1 else [],
        slurm=parse_slurm(substitute(spec.slurm, env, top), top),
    )


def __getattr__(name: str) -> Any:
    """`substitute` and `toposort` live in `study.expand` (which imports this module); still
    importable from here."""
    if name in ("substitute", "toposort"):
        from safeadapt.study import expand

        return getattr(expand, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
