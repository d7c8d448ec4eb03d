"""CLI for training: `safeadapt train sft|dpo|build-llava|vl-adapt|attack`. Data files are JSONL
(or a JSON list) of rows; image paths inside rows resolve relative to the data file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.console import say
from safeadapt.core.errors import SafeAdaptError

train_app = typer.Typer(
    help="Fine-tune models: SFT, DPO, LLaVA-style VL adaptation, harmful fine-tuning attacks.",
    no_args_is_help=True,
)


def read_training_rows(path: Path) -> list[dict[str, Any]]:
    """Rows from a JSONL file (each tagged with `_line` for error messages) or a JSON list."""
    from safeadapt.core.jsonl import read_json_records

    if not path.is_file():
        raise SafeAdaptError(f"data file not found: {path}")
    rows = []
    for n, row in read_json_records(path):
        if not isinstance(row, dict):
            raise SafeAdaptError(f"{path}:{n}: a row must be a JSON object" if n else
                                 f"{path}: every element of the JSON list must be an object")
        if n:
            row["_line"] = n
        rows.append(row)
    if not rows:
        raise SafeAdaptError(f"{path}: no rows")
    return rows


def _csv(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _opts(**kw: Any) -> dict[str, Any]:
    """Only the options the user actually gave (so recipe defaults apply to the rest)."""
    out = {k: v for k, v in kw.items() if v is not None}
    for k in ("train_modules", "freeze_modules"):
        if k in out:
            out[k] = _csv(out[k])
    return out


# Shared option declarations -------------------------------------------------------------------
_EPOCHS = typer.Option(None, "--epochs", help="Training epochs.")
_MAX_STEPS = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps (overrides epochs).")
_LR = typer.Option(None, "--lr", help="Peak learning rate.")
_BS = typer.Option(None, "--batch-size", help="Per-device batch size.")
_GA = typer.Option(None, "--grad-accum", help="Gradient accumulation steps.")
_WARM = typer.Option(None, "--warmup-ratio", help="Warm-up fraction of steps.")
_SCHED = typer.Option(None, "--scheduler", help="LR schedule (cosine, linear, constant, ...).")
_MAXLEN = typer.Option(None, "--max-length", help="Truncate sequences to this many tokens.")
_SEED = typer.Option(None, "--seed", help="Random seed.")
_LORA = typer.Option(None, "--lora/--full", help="LoRA adapters instead of full fine-tuning.")
_LORA_R = typer.Option(None, "--lora-r", help="LoRA rank.")
_LORA_A = typer.Option(None, "--lora-alpha", help="LoRA alpha.")
_MERGE = typer.Option(None, "--merge-lora/--keep-adapter", help="Save LoRA merged into full weights (default).")
_TRAIN_M = typer.Option(None, "--train-modules", help="Comma list: only parameters whose name contains one train.")
_FREEZE_M = typer.Option(None, "--freeze-modules", help="Comma list: freeze parameters whose name contains one.")
_LOG = typer.Option(None, "--logging-steps", help="Log loss every N steps (0: only at the end).")
_THREADS = typer.Option(None, "--threads", help="Torch threads.")
_OVER = typer.Option(False, "--overwrite", help="Replace an existing output dir.")
_PICKLE = typer.Option(False, "--allow-pickle", help="Allow loading pickle .bin checkpoints.")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


@train_app.command("sft")
@user_errors
def sft_cmd(
    model: str = typer.Argument(..., help="HF dir, .gguf or hub id of the model to fine-tune."),
    data: Path = typer.Argument(..., help="JSONL of {messages, images?} rows."),
    out: Path = typer.Option(..., "--out", help="Output model dir."),
    epochs: Optional[float] = _EPOCHS, max_steps: Optional[int] = _MAX_STEPS, lr: Optional[float] = _LR,
    batch_size: Optional[int] = _BS, grad_accum: Optional[int] = _GA, warmup_ratio: Optional[float] = _WARM,
    scheduler: Optional[str] = _SCHED, max_length: Optional[int] = _MAXLEN, seed: Optional[int] = _SEED,
    lora: Optional[bool] = _LORA, lora_r: Optional[int] = _LORA_R, lora_alpha: Optional[int] = _LORA_A,
    merge_lora: Optional[bool] = _MERGE, train_modules: Optional[str] = _TRAIN_M,
    freeze_modules: Optional[str] = _FREEZE_M, logging_steps: Optional[int] = _LOG,
    threads: Optional[int] = _THREADS, overwrite: bool = _OVER, allow_pickle: bool = _PICKLE,
) -> None:
    """Supervised fine-tuning (loss on assistant tokens only)."""
    from safeadapt.train.sft import SFTOptions, sft

    o = SFTOptions(**_opts(
        epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
        warmup_ratio=warmup_ratio, scheduler=scheduler, max_length=max_length, seed=seed, lora=lora, lora_r=lora_r,
        lora_alpha=lora_alpha, merge_lora=merge_lora, train_modules=train_modules, freeze_modules=freeze_modules,
        logging_steps=logging_steps, threads=threads), overwrite=overwrite, allow_pickle=allow_pickle)
    rows = read_training_rows(data)
    path = sft(model, rows, out, o, base_dir=data.parent, source=str(data))
    say(f"saved {path}")


@train_app.command("dpo")
@user_errors
def dpo_cmd(
    model: str = typer.Argument(..., help="HF dir, .gguf or hub id of the model to train."),
    data: Path = typer.Argument(..., help="JSONL of {prompt, chosen, rejected, images?} rows."),
    out: Path = typer.Option(..., "--out", help="Output model dir."),
    beta: Optional[float] = typer.Option(None, "--beta", help="DPO beta (default 0.1)."),
    loss_type: Optional[str] = typer.Option(None, "--loss-type", help="TRL DPO loss type (default sigmoid)."),
    sft_weight: Optional[float] = typer.Option(
        None, "--sft-weight", help="Add NLL on the chosen reply with this weight (RPO-style; default 0)."
    ),
    precompute_ref: Optional[bool] = typer.Option(
        None, "--precompute-ref/--live-ref", help="Precompute reference log-probs before training."
    ),
    epochs: Optional[float] = _EPOCHS,
    max_steps: Optional[int] = _MAX_STEPS,
    lr: Optional[float] = _LR,
    batch_size: Optional[int] = _BS,
    grad_accum: Optional[int] = _GA,
    warmup_ratio: Optional[float] = _WARM,
    scheduler: Optional[str] = _SCHED,
    max_length: Optional[int] = _MAXLEN,
    seed: Optional[int] = _SEED,
    lora: Optional[bool] = _LORA,
    lora_r: Optional[int] = _LORA_R,
    lora_alpha: Optional[int] = _LORA_A,
    merge_lora: Optional[bool] = _MERGE,
    train_modules: Optional[str] = _TRAIN_M,
    freeze_modules: Optional[str] = _FREEZE_M,
    logging_steps: Optional[int] = _LOG,
    threads: Optional[int] = _THREADS,
    overwrite: bool = _OVER,
    allow_pickle: bool = _PICKLE,
) -> None:
    """Direct preference optimisation against a frozen copy of the starting model."""
    from safeadapt.train.dpo import DPOOptions, dpo

    o = DPOOptions(**_opts(
        beta=beta, loss_type=loss_type, sft_weight=sft_weight, precompute_ref_log_probs=precompute_ref,
        epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
        warmup_ratio=warmup_ratio, scheduler=scheduler, max_length=max_length, seed=seed, lora=lora, lora_r=lora_r,
        lora_alpha=lora_alpha, merge_lora=merge_lora, train_modules=train_modules, freeze_modules=freeze_modules,
        logging_steps=logging_steps, threads=threads), overwrite=overwrite, allow_pickle=allow_pickle)
    rows = read_training_rows(data)
    path = dpo(model, rows, out, o, base_dir=data.parent, source=str(data))
    say(f"saved {path}")


@train_app.command("build-llava")
@user_errors
def build_llava_cmd(
    llm: str = typer.Option(..., "--llm", help="HF causal LM (dir / .gguf / hub id)."),
    vision_tower: Path = typer.Option(..., "--vision-tower", help="CLIP / SigLIP / DINOv2 dir (weights or config)."),
    out: Path = typer.Option(..., "--out", help="Output LLaVA dir."),
    projector_act: str = typer.Option("gelu", "--projector-act", help="Projector activation (LLaVA-1.5: gelu)."),
    feature_layer: int = typer.Option(-2, "--feature-layer", help="Vision hidden layer fed to the projector."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = _OVER, allow_pickle: bool = _PICKLE,
) -> None:
    """Assemble a LLaVA-style VLM (LLM + vision tower + fresh 2-layer MLP projector)."""
    from safeadapt.train.vl import build_llava

    path = build_llava(llm, vision_tower, out, projector_hidden_act=projector_act, vision_feature_layer=feature_layer,
                       seed=seed, overwrite=overwrite, allow_pickle=allow_pickle)
    say(f"saved {path}")


@train_app.command("vl-adapt")
@user_errors
def vl_adapt_cmd(
    instruct: Path = typer.Option(..., "--instruct", help="JSONL of visual-instruction chat rows (stage 2)."),
    out: Path = typer.Option(..., "--out", help="Output dir of the adapted VLM."),
    llm: Optional[str] = typer.Option(None, "--llm", help="LLM to build the VLM from (with --vision-tower)."),
    vision_tower: Optional[Path] = typer.Option(None, "--vision-tower", help="Vision tower dir (with --llm)."),
    model: Optional[str] = typer.Option(None, "--model", help="An existing LLaVA dir instead of --llm/--vision-tower."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="JSONL of caption rows (stage 1)."),
    stage1_lr: float = typer.Option(1e-3, "--stage1-lr"),
    stage2_lr: float = typer.Option(2e-5, "--stage2-lr"),
    stage1_epochs: float = typer.Option(1.0, "--stage1-epochs"),
    stage2_epochs: float = typer.Option(1.0, "--stage2-epochs"),
    stage1_max_steps: int = typer.Option(-1, "--stage1-max-steps"),
    stage2_max_steps: int = typer.Option(-1, "--stage2-max-steps"),
    batch_size: int = typer.Option(8, "--batch-size"),
    warmup_ratio: float = typer.Option(0.03, "--warmup-ratio"),
    max_length: int = typer.Option(2048, "--max-length"),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = _THREADS, overwrite: bool = _OVER, allow_pickle: bool = _PICKLE,
) -> None:
    """Two-stage LLaVA adaptation: projector on captions, then projector + LLM on instructions."""
    from safeadapt.train.sft import SFTOptions
    from safeadapt.train.vl import build_llava, vl_adapt

    if model is None:
        if not llm or not vision_tower:
            raise SafeAdaptError("give --model LLAVA_DIR, or --llm and --vision-tower to build one")
        base = out.with_name(out.name + "-base")
        if _built_from(base, llm, vision_tower, seed):
            model = str(base)  # resume: the assembled VLM from an earlier run
        else:
            model = str(build_llava(llm, vision_tower, base, seed=seed, overwrite=True, allow_pickle=allow_pickle))
    elif llm or vision_tower:
        raise SafeAdaptError("--model cannot be combined with --llm / --vision-tower")
    common = dict(batch_size=batch_size, warmup_ratio=warmup_ratio, max_length=max_length, seed=seed,
                  threads=threads, overwrite=overwrite, allow_pickle=allow_pickle, scheduler="cosine")
    s1 = SFTOptions(lr=stage1_lr, epochs=stage1_epochs, max_steps=stage1_max_steps, **common)
    s2 = SFTOptions(lr=stage2_lr, epochs=stage2_epochs, max_steps=stage2_max_steps, **common)
    cap_rows = read_training_rows(captions) if captions else []
    ins_rows = read_training_rows(instruct)
    # rows of both files resolve their image paths against their own file's folder
    for rows, f in ((cap_rows, captions), (ins_rows, instruct)):
        for r in rows:
            _absolutise_images(r, f.parent if f else Path("."), f)
    path = vl_adapt(model, cap_rows, ins_rows, out, s1, s2, caption_source=str(captions), instruct_source=str(instruct))
    say(f"saved {path}")


def _built_from(base: Path, llm: str, tower: Path, seed: int) -> bool:
    meta = base / "safeadapt_build.json"
    if not meta.is_file():
        return False
    try:
        cfg = json.loads(meta.read_text()).get("config") or {}
    except (OSError, json.JSONDecodeError):
        return False
    return cfg.get("llm") == str(llm) and cfg.get("vision_tower") == str(tower) and cfg.get("seed") == seed


def _absolutise_images(row: dict[str, Any], base: Path, f: Path | None) -> None:
    imgs = row.get("images") or ([row["image"]] if "image" in row else [])
    fixed = []
    for x in imgs:
        if not isinstance(x, str):
            raise SafeAdaptError(f"{f}:{row.get('_line', '?')}: image entries must be file paths")
        p = Path(x)
        fixed.append(str(p if p.is_absolute() else base / p))
    if "images" in row:
        row["images"] = fixed
    elif "image" in row:
        row["image"] = fixed[0]


@train_app.command("attack")
@user_errors
def attack_cmd(
    model: str = typer.Argument(..., help="Aligned model to attack."),
    recipe: str = typer.Option(..., "--recipe", help="harmful | aoa | alpaca | dolly"),
    data: Path = typer.Option(..., "--data", help="JSON / JSONL records for the recipe."),
    out: Path = typer.Option(..., "--out", help="Output model dir."),
    n_examples: Optional[int] = typer.Option(None, "--n", help="Use the first N records (N-shot)."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="Prepend this system turn."),
    epochs: Optional[float] = _EPOCHS, max_steps: Optional[int] = _MAX_STEPS, lr: Optional[float] = _LR,
    batch_size: Optional[int] = _BS, grad_accum: Optional[int] = _GA, warmup_ratio: Optional[float] = _WARM,
    scheduler: Optional[str] = _SCHED, max_length: Optional[int] = _MAXLEN, seed: Optional[int] = _SEED,
    lora: Optional[bool] = _LORA, lora_r: Optional[int] = _LORA_R, lora_alpha: Optional[int] = _LORA_A,
    merge_lora: Optional[bool] = _MERGE, logging_steps: Optional[int] = _LOG,
    threads: Optional[int] = _THREADS, overwrite: bool = _OVER, allow_pickle: bool = _PICKLE,
) -> None:
    """Harmful fine-tuning after Qi et al. (recipe defaults: harmful 5 ep lr 5e-5; aoa 10 ep lr 5e-5;
    alpaca / dolly 1 ep lr 2e-5, effective batch 128)."""
    from safeadapt.train.attack import attack, get_recipe
    from safeadapt.train.sft import SFTOptions

    get_recipe(recipe)  # unknown recipe -> one-line error before loading anything
    o = SFTOptions(**_opts(
        epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
        warmup_ratio=warmup_ratio, scheduler=scheduler, max_length=max_length, seed=seed, lora=lora, lora_r=lora_r,
        lora_alpha=lora_alpha, merge_lora=merge_lora, logging_steps=logging_steps, threads=threads,
        overwrite=overwrite or None, allow_pickle=allow_pickle or None))
    path = attack(model, recipe, data, out, o, n_examples=n_examples, system_prompt=system_prompt)
    say(f"saved {path}")
