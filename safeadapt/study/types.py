"""Study types: the pydantic models of a study file (`StudySpec`, `StageSpec`, `PathInput`) and the
validated `Study` / `Stage` / `InputRef` it becomes (built by `schema.load_study`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict

from safeadapt.core.errors import SafeAdaptError


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
        raise SafeAdaptError(
            f"study {self.name!r} has no stage {name!r}; stages: {', '.join(s.name for s in self.stages)}"
        )
