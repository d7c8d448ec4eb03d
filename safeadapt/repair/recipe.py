"""The repair recipe (YAML): repair_method, adapted / aligned / unaligned / safety model paths,
parameters (scalars, or mergekit-style per-layer gradients and `{filter, value}` lists), calibration
datasets (eval dataset SPECs) and `filters` (substrings of the tensor names a repair may touch)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.config import Setting, read_yaml_mapping, validated
from safeadapt.repair.methods import REPAIRS, RepairMethod

ROLES = ("adapted", "aligned", "unaligned", "safety")


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    safety: Optional[Union[str, dict[str, Any]]] = None  # antidote: the harmful realignment set
    utility: Optional[Union[str, dict[str, Any]]] = None
    pairs: Optional[str] = None  # somf: DPO preference rows (JSONL/JSON/CSV with prompt, chosen, rejected)
    n: int = 128
    max_length: int = 256
    batch_size: int = 8


class RepairRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repair_method: str
    adapted: str
    aligned: Optional[str] = None
    unaligned: Optional[str] = None
    safety: Optional[str] = None  # safemerge: the safety-tuned model mixed in (default: aligned)
    others: Optional[list[str]] = None  # somf: further fine-tuned models whose task vectors are fused
    parameters: dict[str, Setting] = {}
    calibration: Optional[Calibration] = None
    filters: Optional[list[str]] = None
    dtype: str = "float32"
    out_dtype: Optional[str] = None
    name: Optional[str] = None

    def method(self) -> RepairMethod:
        return REPAIRS.get(self.repair_method)


def load_recipe(recipe: dict[str, Any] | str | os.PathLike | RepairRecipe) -> tuple[RepairRecipe, Path | None, str]:
    """Parse and validate a recipe (dict, YAML path or YAML text). Returns (recipe, its dir, label)."""
    if isinstance(recipe, RepairRecipe):
        return recipe, None, "repair recipe"
    data, where, label = read_yaml_mapping(recipe, "repair recipe", "repair_method and adapted")
    rec = validated(RepairRecipe, data, label)
    try:
        method = rec.method()
    except SafeAdaptError as e:
        raise SafeAdaptError(f"{label}: {e}") from None
    unknown = sorted(set(rec.parameters) - set(method.params))
    if unknown:
        raise SafeAdaptError(f"{label}: unknown parameter {unknown[0]!r} for repair method {method.name} "
                             f"(known: {', '.join(sorted(method.params)) or 'none'})")
    for r in method.needs:
        if getattr(rec, r) is None:
            raise SafeAdaptError(f"{label}: repair method {method.name} needs `{r}:` ({_ROLE_HELP[r]})")
    if method.check is not None:
        scalars = {
            k: v for k, v in {**method.params, **rec.parameters}.items() if isinstance(v, (bool, int, float, str))
        }
        try:
            method.check({**method.params, **scalars})
        except SafeAdaptError as e:
            raise SafeAdaptError(f"{label}: {e}") from None
    for need in method.scores({**method.params, **rec.parameters}):
        spec = getattr(rec.calibration, need.dataset, None) if rec.calibration else None
        if spec is None:
            raise SafeAdaptError(
                f"{label}: repair method {method.name} needs calibration.{need.dataset} (a dataset SPEC)"
            )
    for field in method.data:
        if getattr(rec.calibration, field, None) is None:
            raise SafeAdaptError(f"{label}: repair method {method.name} needs calibration.{field}")
    if rec.others and "others" not in method.optional:
        raise SafeAdaptError(f"{label}: `others` is only used by somf, not {method.name}")
    if rec.calibration is not None and rec.calibration.n < 1:
        raise SafeAdaptError(f"{label}: calibration.n must be at least 1")
    if where is not None and rec.calibration is not None:  # data files relative to the recipe's directory
        for field in ("safety", "utility", "pairs"):
            spec = getattr(rec.calibration, field)
            if isinstance(spec, str) and not Path(spec).expanduser().exists() and (where / spec).exists():
                setattr(rec.calibration, field, str(where / spec))
    return rec, where, label


_ROLE_HELP = {
    "aligned": "the safety reference: the model before adaptation, or a safety-tuned one",
    "unaligned": "the aligned model after a harmful fine-tune (`safeadapt train attack`) or before alignment",
    "safety": "a safety-tuned model",
}
