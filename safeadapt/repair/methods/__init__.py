"""Repair methods: each is one small module registering a pure per-tensor function in `REPAIRS`.
Importing this package registers all built-ins."""

from safeadapt.repair.methods import antidote, resta, safemerge, set_difference, somf  # noqa: F401
from safeadapt.repair.methods.base import REPAIRS, RepairMethod, ScoreNeed, repair_method

__all__ = ["REPAIRS", "RepairMethod", "ScoreNeed", "repair_method"]
