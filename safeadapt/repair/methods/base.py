"""The repair-method contract: a pure function over one tensor's inputs (a merge `TensorJob` whose
`extras` hold the role -> input index map and the scores the shared calibration pass computed for
this tensor), registered with its parameters, the input roles it needs and the scores it wants.
Methods do no I/O and compute no scores from data; the engine (safeadapt.repair.api) does both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.registry import Registry
from safeadapt.io.names import canonical_part, layer_index
from safeadapt.repair.merge.methods.base import TensorJob


@dataclass(frozen=True)
class ScoreNeed:
    """One calibration score set: `kind` wanda (input-feature norms per Linear) or snip (|W|*sum|dL/dW|,
    per-sample gradients), over calibration dataset `dataset` (safety / utility), on model `role`."""

    name: str
    kind: str
    dataset: str
    role: str


@dataclass(frozen=True)
class RepairMethod:
    name: str
    fn: Callable[[TensorJob], Any]
    params: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # input roles besides `adapted`
    optional: tuple[str, ...] = ()  # roles used when the recipe gives them
    reference: str = ""
    scores: Callable[[dict[str, Any]], list[ScoreNeed]] = lambda _p: []
    chunked: Callable[[dict[str, Any]], bool] | None = None  # elementwise for these params: may stream row blocks
    scope: str = "layer_matrices"  # default tensors touched: layer_matrices | language
    check: Callable[[dict[str, Any]], None] | None = None  # validates global parameter values (one-line errors)
    train: Callable[..., dict[str, Any]] | None = None  # a trained pass (SOMF masks) run before streaming
    data: tuple[str, ...] = ()  # calibration fields required besides the score datasets (somf: pairs)
    own_filters: bool = False  # the method applies `filters` itself (somf: where masks train)


REPAIRS: Registry[RepairMethod] = Registry("repair method", builtins="safeadapt.repair.methods")


def repair_method(name: str, **kw: Any) -> Callable[[Callable[[TensorJob], Any]], Callable[[TensorJob], Any]]:
    """Register `fn(job) -> tensor` as repair method `name` (one line above the function)."""

    def deco(fn: Callable[[TensorJob], Any]) -> Callable[[TensorJob], Any]:
        REPAIRS.register(name)(RepairMethod(name, fn, **kw))
        return fn

    return deco


def role(job: TensorJob, name: str) -> Any:
    """The input tensor of role `name` (adapted, aligned, unaligned, safety)."""
    idx = job.extras["roles"].get(name)
    if idx is None:
        raise SafeAdaptError(f"repair needs the {name} model (tensor {job.name})")
    return job.tensors[idx]


def in_scope(key: str, shape: tuple[int, ...], scope: str) -> bool:
    """Default tensors a method touches: `language` = every language-model tensor; `layer_matrices`
    = 2-D weights inside the decoder layers (attention and MLP projections)."""
    if canonical_part(key) != "language":
        return False
    if scope == "language":
        return True
    return len(shape) == 2 and key.endswith(".weight") and layer_index(key) is not None


def report(job: TensorJob, **values: Any) -> None:
    """Record per-tensor facts (fraction changed, cosine...) for the model card and provenance."""
    rep = job.extras.get("report")
    if rep is None:
        return
    vals = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}
    prev = rep.get(job.name)
    if job.rows is not None and job.rows.start > 0 and prev is not None:  # later row blocks add their counts
        vals = {k: prev[k] + v if isinstance(v, int) and not isinstance(v, bool) else v for k, v in vals.items()}
    rep[job.name] = vals


def fraction(name: str, v: Any, lo: float = 0.0, hi: float = 1.0) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SafeAdaptError(f"parameter {name} must be a number, got {v!r}") from None
    if not lo <= f <= hi:
        raise SafeAdaptError(f"parameter {name} must be in [{lo}, {hi}], got {f}")
    return f
