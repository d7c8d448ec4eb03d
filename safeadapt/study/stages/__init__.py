"""Built-in stage kinds of the study pipeline, one small file each ("python", "sft", "dpo",
"vl-adapt", "attack", "merge", "eval"). Each adapter imports its heavy API lazily inside the
function, so loading this registry is fast. Plugins (e.g. `safeadapt.world.stages`) add more."""

from __future__ import annotations

from safeadapt.study.registry import StageKindRegistry

STAGE_KINDS = StageKindRegistry("stage kind")

# Registration side effects; each module only imports light things at top level.
from safeadapt.study.stages import attack, dpo, eval, merge, python, sft, vl_adapt  # noqa: E402,F401
from safeadapt.study.stages import search  # noqa: E402,F401
from safeadapt.study.stages import diagnose  # noqa: E402,F401
from safeadapt.study.stages import repair  # noqa: E402,F401
from safeadapt.study.stages import build_llava, convert, selfgen_dpo  # noqa: E402,F401

__all__ = ["STAGE_KINDS"]
