"""Merge methods: each is one small module registering a pure per-tensor function in `METHODS`
(`@merge_method("name", ...)`); every module of this package is loaded on the first lookup."""

from safeadapt.repair.merge.methods.base import METHODS, REQUIRED, MergeMethod, PrepareJob, TensorJob, merge_method

__all__ = ["METHODS", "REQUIRED", "MergeMethod", "PrepareJob", "TensorJob", "merge_method"]
