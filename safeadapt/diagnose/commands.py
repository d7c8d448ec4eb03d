"""CLI: `safeadapt diagnose weights|activations|recommend` — where adaptation moved the weights,
where safety lives in the hidden states, and which layers a merge should repair."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.console import say

app = typer.Typer(help="Diagnose where adaptation changed a model and where its safety lives.", no_args_is_help=True)


def _labels(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",")] if text else None


@app.command("weights")
@user_errors
def weights_cmd(
    models: list[str] = typer.Argument(
        ..., help="2 or 3 checkpoints A B [C] (HF dir, .safetensors, .gguf, LLaVA VLM)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output dir: weights.json + heatmap PNGs (written atomically)."),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="Comma-separated names for the models (default A,B,C)."
    ),
    spectra: bool = typer.Option(False, "--spectra", help="Top singular values of 2-D deltas (torch.svd_lowrank)."),
    spectra_k: int = typer.Option(8, "--spectra-k", help="Singular values per tensor."),
    spectra_budget: float = typer.Option(
        120.0, "--spectra-budget", help="Seconds for all spectra; later tensors are skipped and counted."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output dir."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow pickle (.bin) inputs you trust."),
) -> None:
    """Per layer x module: relative change, delta norm, sign agreement; with 3 models the task-vector cosine."""
    from safeadapt.core.atomic import atomic_dir
    from safeadapt.diagnose.api import run_weights

    with atomic_dir(out, overwrite=overwrite) as tmp:
        res = run_weights(models, tmp, labels=_labels(labels), spectra=spectra, spectra_k=spectra_k,
                          spectra_budget_s=spectra_budget, allow_pickle=allow_pickle)
    top = max((r for r in res["layers"] if r["pair"] == res["pairs"][0]), key=lambda r: r["rel_change"], default=None)
    where = (
        f"; largest relative change {res['pairs'][0]} in layer {top['layer']} ({top['rel_change']:.3g})" if top else ""
    )
    say(f"weight diagnosis of {len(models)} models written to {out}{where}")


@app.command("activations")
@user_errors
def activations_cmd(
    models: list[str] = typer.Argument(..., help="Models; the first is the reference (e.g. the aligned LLM)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dir: activations.json, directions.safetensors, PNGs."),
    harmful: str = typer.Option(
        "builtin:harmful", "--harmful", help="Harmful prompts: builtin:NAME or any dataset spec eval reads."
    ),
    harmless: str = typer.Option("builtin:lookalike", "--harmless", help="Harmless prompts (same forms)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N prompts per class."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated names for the models."),
    batch_size: int = typer.Option(32, "--batch-size", help="Prompts per forward pass."),
    ablate: bool = typer.Option(
        True, "--ablate/--no-ablate", help="Causal check: ablate the first model's direction, ASR before/after."
    ),
    ablate_n: int = typer.Option(64, "--ablate-n", help="Harmful prompts generated for the causal check."),
    judge: str = typer.Option("refusal", "--judge", help="Judge for the causal check (the eval judges)."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Generation length in the causal check."),
    direction_layer: Optional[int] = typer.Option(
        None, "--direction-layer", help="Hidden-state index of the ablated direction (default: best separation)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the probe splits and generation."),
    threads: int = typer.Option(1, "--threads", help="torch threads (0 = torch's default)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output dir."),
) -> None:
    """Per layer: probe accuracy, Safety-Layers cosine gap, refusal direction; across models its cosine/projection."""
    from safeadapt.core.atomic import atomic_dir
    from safeadapt.diagnose.api import run_activations

    with atomic_dir(out, overwrite=overwrite) as tmp:
        res = run_activations(
            models,
            tmp,
            harmful=harmful,
            harmless=harmless,
            limit=limit,
            labels=_labels(labels),
            batch_size=batch_size,
            ablate=ablate,
            ablate_n=ablate_n,
            judge=judge,
            max_new_tokens=max_new_tokens,
            direction_layer=direction_layer,
            seed=seed,
            threads=threads or None,
        )
    msg = f"activation diagnosis of {len(models)} model(s) written to {out}"
    ab = res.get("ablation")
    if ab:
        before, after = ab["asr_before"]["value"], ab["asr_after"]["value"]
        msg += f"; ablating layer {ab['layer']}'s direction: ASR {before:.2f} -> {after:.2f}"
    say(msg)


@app.command("recommend")
@user_errors
def recommend_cmd(
    weights: Path = typer.Argument(..., help="A `diagnose weights` output dir (or its weights.json)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dir: recommend.yaml (a merge recipe) + recommend.json."),
    activations: Optional[Path] = typer.Option(None, "--activations", help="A `diagnose activations` output dir."),
    pair: Optional[str] = typer.Option(None, "--pair", help="Task vector to score (default: the first pair, A->B)."),
    adapted: Optional[str] = typer.Option(None, "--adapted", help="Adapted model (default: B of a 3-model run)."),
    safety: Optional[str] = typer.Option(None, "--safety", help="Safety-tuned model (default: C of a 3-model run)."),
    inside: float = typer.Option(0.9, "--inside", help="Safety model's weight in the chosen layers."),
    outside: float = typer.Option(0.25, "--outside", help="Safety model's weight elsewhere."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output dir."),
) -> None:
    """Layer range to repair, as a linear merge recipe with per-layer weights that `safeadapt merge` runs."""
    from safeadapt.core.atomic import atomic_dir
    from safeadapt.diagnose.api import run_recommend

    with atomic_dir(out, overwrite=overwrite) as tmp:
        res = run_recommend(weights, tmp, activations_dir=activations, pair=pair, adapted=adapted, safety=safety,
                            inside=inside, outside=outside)
    lo, hi = res["layers"]
    say(
        f"recommended repair of layers {lo}-{hi}: {out / 'recommend.yaml'} (run: safeadapt merge "
        f"{out / 'recommend.yaml'} --out DIR)"
    )


def register(root: typer.Typer) -> None:
    """Add `safeadapt diagnose ...` to the main app."""
    root.add_typer(app, name="diagnose")
