"""The merge-method contract: a pure function over one tensor name's inputs (`TensorJob`) returning
the merged tensor, registered with its global and per-model parameters and their defaults. Methods
do no I/O; the engine loads, casts, slices embedding rows and writes. A method that is elementwise
(for given parameters) declares `chunked`, so the engine may stream a tensor through it in row
chunks; `prepare` computes whole-tensor statistics first (TIES' per-model top-k masks)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from safeadapt.core.registry import Registry


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class TensorJob:
    """Inputs of one output tensor, already cast to the compute dtype.

    `tensors` follow the config's model order (mergekit's: `models` in order, then `base_model` if
    it was not listed); `base` indexes the base model's tensor in it (None without a base)."""

    name: str
    tensors: list[Any]
    base: int | None
    params: dict[str, Any]
    tensor_params: list[dict[str, Any]]
    seed: int
    rows: slice | None = None  # the rows of the full tensor these inputs are (chunked streaming)
    extras: dict[str, Any] = field(default_factory=dict)  # what `prepare` computed for this tensor


@dataclass(frozen=True)
class PrepareJob:
    """Whole-tensor view handed to a method's `prepare`: `load_rows(i, r0, r1)` reads rows r0:r1 of
    input i (config order), cast to the compute dtype; `rows` is the full row count."""

    name: str
    shape: tuple[int, ...]
    base: int | None
    params: dict[str, Any]
    tensor_params: list[dict[str, Any]]
    rows: int
    chunk_rows: int
    load_rows: Callable[[int, int, int], Any]
    seed: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # per-merge scratch for speed hints; never changes results

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def row_numel(self) -> int:
        """Elements in one row (0 for a tensor with no rows)."""
        return self.numel // self.rows if self.rows else 0


@dataclass(frozen=True)
class MergeMethod:
    name: str
    fn: Callable[[TensorJob], Any]
    params: dict[str, Any] = field(default_factory=dict)  # global parameters -> defaults
    tensor_params: dict[str, Any] = field(default_factory=dict)  # per-model parameters -> defaults
    needs_base: bool = False
    reference: str = ""
    # chunked(params, tensor_params) -> True when fn on row chunks equals fn on the whole tensor, row
    # for row, bit for bit (given `prepare`'s extras)
    chunked: Callable[[dict[str, Any], list[dict[str, Any]]], bool] | None = None
    # prepare(job) -> extras for the chunked pass, or None to use the whole-tensor path instead
    prepare: Callable[[PrepareJob], dict[str, Any] | None] | None = None

    def __call__(self, job: TensorJob) -> Any:
        return self.fn(job)


METHODS: Registry[MergeMethod] = Registry("merge method", builtins="safeadapt.repair.merge.methods")


def merge_method(name: str, *, params: dict[str, Any] | None = None, tensor_params: dict[str, Any] | None = None,
                 needs_base: bool = False, reference: str = "",
                 chunked: Callable[[dict[str, Any], list[dict[str, Any]]], bool] | None = None,
                 prepare: Callable[[PrepareJob], dict[str, Any] | None] | None = None,
                 ) -> Callable[[Callable[[TensorJob], Any]], Callable[[TensorJob], Any]]:
    """Register `fn(job) -> tensor` as merge method `name` (one line above the function)."""

    def deco(fn: Callable[[TensorJob], Any]) -> Callable[[TensorJob], Any]:
        METHODS.register(name)(
            MergeMethod(
                name, fn, dict(params or {}), dict(tensor_params or {}), needs_base, reference, chunked, prepare
            )
        )
        return fn

    return deco
