"""Built-in stage kinds of the study pipeline, one small file each (`@STAGE_KINDS.register("kind",
params_model=..., version=...)`); every module of this package is loaded on the first lookup, and
plugins add more (`safeadapt.core.plugins`). Each imports its heavy API lazily inside the function."""

from __future__ import annotations

from safeadapt.study.registry import StageKindRegistry

STAGE_KINDS = StageKindRegistry("stage kind", builtins="safeadapt.study.stages")

__all__ = ["STAGE_KINDS"]
