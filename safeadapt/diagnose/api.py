"""Entry points shared by the CLI and the study stages: run a diagnosis and write its files into a
directory (`weights.json` + heatmaps, `activations.json` + line plots + directions, `recommend.yaml`
+ `recommend.json`). Everything is computed before the first file is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from safeadapt.core.atomic import atomic_write_json, atomic_write_text
from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import provenance


def run_weights(
    refs: Sequence[str | os.PathLike],
    out: Path,
    *,
    labels: Sequence[str] | None = None,
    spectra: bool = False,
    spectra_k: int = 8,
    spectra_budget_s: float = 120.0,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """Weight diagnosis of 2-3 models into existing dir `out` (weights.json + heatmap PNGs)."""
    from safeadapt.diagnose.plots import weight_figures
    from safeadapt.diagnose.weights import diagnose_weights

    res = diagnose_weights(refs, labels, spectra=spectra, spectra_k=spectra_k, spectra_budget_s=spectra_budget_s,
                           allow_pickle=allow_pickle)
    res["figures"] = weight_figures(res, out)
    res["provenance"] = provenance(config={"models": res["models"], "spectra": spectra, "spectra_k": spectra_k})
    atomic_write_json(out / "weights.json", res)
    return res


def run_activations(
    refs: Sequence[str | os.PathLike],
    out: Path,
    *,
    harmful: str | Sequence[Any] = "builtin:harmful",
    harmless: str | Sequence[Any] = "builtin:lookalike",
    limit: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """Activation diagnosis of the models into existing dir `out`; prompt sets as specs or Samples."""
    from safeadapt.diagnose.activations import diagnose_activations, load_prompts, write_activations

    h = load_prompts(harmful, what="harmful", limit=limit) if isinstance(harmful, str) else list(harmful)[:limit]
    s = load_prompts(harmless, what="harmless", limit=limit) if isinstance(harmless, str) else list(harmless)[:limit]
    res, dirs = diagnose_activations(refs, h, s, **kw)
    write_activations(res, dirs, out)
    return res


def _read_json(path: Path, name: str) -> dict[str, Any]:
    f = path if path.suffix == ".json" else path / name
    if not f.is_file():
        raise SafeAdaptError(f"{f}: not found (run `safeadapt diagnose {name.split('.')[0]}` first)")
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise SafeAdaptError(f"{f}: not valid JSON ({e.msg} at line {e.lineno})") from None


def run_recommend(weights_dir: Path, out: Path, *, activations_dir: Path | None = None, **kw: Any) -> dict[str, Any]:
    """recommend.yaml (a `safeadapt merge` recipe) + recommend.json into existing dir `out`."""
    from safeadapt.diagnose.recommend import recipe_yaml, recommend

    w = _read_json(Path(weights_dir), "weights.json")
    a = _read_json(Path(activations_dir), "activations.json") if activations_dir else None
    recipe, explain = recommend(w, a, **kw)
    from safeadapt.repair.merge.config import load_config

    load_config(recipe)  # the recipe must be one `safeadapt merge` accepts
    atomic_write_json(
        out / "recommend.json",
        {
            **explain,
            "recipe": recipe,
            "provenance": provenance(
                config={"weights": str(weights_dir), "activations": str(activations_dir) if activations_dir else None}
            ),
        },
    )
    atomic_write_text(out / "recommend.yaml", recipe_yaml(recipe, explain))
    return {"recipe": recipe, **explain}
