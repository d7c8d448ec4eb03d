"""`StageContext`: everything a stage kind's function gets — its params, the output dirs of its
upstream stages, a fresh output dir to fill (renamed atomically on success), a stable scratch dir
that survives a kill (for internal checkpoints), the seed and the study's directories."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError


@dataclass
class StageContext:
    """Arguments of a stage function `fn(ctx) -> None`.

    name: the stage's (expanded) name; kind: its kind; params: validated params (plain JSON data);
    inputs: input slot -> upstream stage output dir (or an external path); out: a fresh temp dir to
    fill (renamed to DIR/stages/<name>-<key12>/ on success; discarded on failure); scratch: a stable
    dir DIR/scratch/<name>-<key12>/ that survives a kill, for resumable partial work (removed after
    success); seed: the stage seed; study_dir: the run's output DIR; base_dir: the directory of the
    study YAML (relative paths in params are resolved against it, see `path`); key: the cache key;
    threads: the torch threads the stage was declared to run with (`threads:` in the study, capped at
    the cores; already set), None when undeclared (a kind that pins its own count keeps doing so).
    """

    name: str
    kind: str
    params: dict[str, Any]
    inputs: dict[str, Path]
    out: Path
    scratch: Path
    seed: int
    study_dir: Path
    base_dir: Path = field(default_factory=Path.cwd)
    key: str = ""
    threads: int | None = None

    def input(self, slot: str) -> Path:
        """The path bound to input `slot`; a one-line error naming the stage when absent."""
        try:
            return self.inputs[slot]
        except KeyError:
            have = ", ".join(sorted(self.inputs)) or "(none)"
            raise SafeAdaptError(f"stage {self.name!r} ({self.kind}) needs input {slot!r}; it has: {have}") from None

    def inputs_with_prefix(self, slot: str) -> dict[str, Path]:
        """Fan-in inputs: `slot` given a list or a glob expands to slots `slot[<stage>]`."""
        pre = f"{slot}["
        return {k[len(pre) : -1]: v for k, v in self.inputs.items() if k.startswith(pre) and k.endswith("]")}

    def path(self, p: str | os.PathLike) -> Path:
        """Resolve a path from params: `~` expanded, relative paths against the study file's dir."""
        q = Path(os.path.expanduser(str(p)))
        return q if q.is_absolute() else (self.base_dir / q)

    def model_input(self, slot: str = "model") -> str:
        """A model reference for input `slot`: the upstream stage's model dir (see `find_model`)."""
        return str(find_model(self.input(slot)))


def find_model(path: Path) -> Path:
    """The model inside a stage output dir: the dir itself when it holds a checkpoint
    (config.json / *.safetensors / *.gguf), else its `model/` sub-dir; the path itself otherwise."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / "config.json").exists() or any(path.glob("*.gguf")) or any(path.glob("*.safetensors")):
        return path
    sub = path / "model"
    if sub.is_dir():
        return sub
    return path
