"""Repair methods: each is one small module registering a pure per-tensor function in `REPAIRS`
(`@repair_method("name", ...)`); every module of this package is loaded on the first lookup."""

from safeadapt.repair.methods.base import REPAIRS, RepairMethod, ScoreNeed, repair_method

__all__ = ["REPAIRS", "RepairMethod", "ScoreNeed", "repair_method"]
