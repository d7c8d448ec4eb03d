"""Shared training plumbing for SFT / DPO / VL adaptation: option base class, model loading,
freezing, LoRA, CPU-sane TRL config defaults, and the atomic save of a full HF checkpoint (chat-row
validation and assistant-only tokenisation live in chat.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.runtime import progress_enabled


class TrainOptions(BaseModel):
    """Knobs shared by every trainer. Defaults are CPU-sane (fp32, no gradient checkpointing,
    no worker processes, no intermediate checkpoints); `trl_defaults=True` keeps TRL's own
    defaults instead (bf16, gradient checkpointing, logging every 10 steps) for comparison."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = 1.0
    max_steps: int = -1
    lr: float = 2e-5
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 2048
    seed: int = 0
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None
    train_modules: list[str] | None = None
    freeze_modules: list[str] | None = None
    logging_steps: int = 0
    merge_lora: bool = True
    optim: str = "adamw_torch"
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (GPU runs; fp32 on CPU)
    activation_checkpointing: bool = False  # trade compute for memory on large models
    threads: int | None = None
    overwrite: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False
    trl_defaults: bool = False
    extra_args: dict[str, Any] = Field(default_factory=dict)




# ----------------------------------------------------------------------------- model set-up


def load_for_training(ref: str | Path, opts: TrainOptions) -> tuple[Any, Any]:
    from safeadapt.io.models import load_pretrained

    model, proc = load_pretrained(
        str(ref), dtype="float32", allow_pickle=opts.allow_pickle, trust_remote_code=opts.trust_remote_code,
        for_training=True,
    )
    return model, proc


def is_processor(proc: Any) -> bool:
    from transformers import ProcessorMixin

    return isinstance(proc, ProcessorMixin)


def tokenizer_of(proc: Any) -> Any:
    return proc.tokenizer if is_processor(proc) else proc


def apply_freezing(model: Any, train_modules: list[str] | None, freeze_modules: list[str] | None) -> dict[str, int]:
    """Substring filters on parameter names: with `train_modules`, only matching parameters train;
    `freeze_modules` then freezes matches. Returns trainable / total parameter counts."""
    names = [n for n, _ in model.named_parameters()]
    if train_modules:
        for pat in train_modules:
            if not any(pat in n for n in names):
                raise SafeAdaptError(f"train_modules: no parameter name contains {pat!r}")
    if freeze_modules:
        for pat in freeze_modules:
            if not any(pat in n for n in names):
                raise SafeAdaptError(f"freeze_modules: no parameter name contains {pat!r}")
    for n, p in model.named_parameters():
        train = True if not train_modules else any(pat in n for pat in train_modules)
        if freeze_modules and any(pat in n for pat in freeze_modules):
            train = False
        p.requires_grad_(train)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if trainable == 0:
        raise SafeAdaptError("no trainable parameters left after train_modules / freeze_modules")
    return {"trainable": trainable, "total": total}


def lora_config(model: Any, opts: TrainOptions) -> Any:
    """A PEFT LoraConfig on the language model's linear layers (never the vision tower, projector
    or lm_head unless named in `lora_target_modules`)."""
    import torch
    from peft import LoraConfig

    if opts.lora_target_modules:
        targets: Any = opts.lora_target_modules
    else:
        lm = [
            n
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)
            and "vision_tower" not in n
            and "multi_modal_projector" not in n
            and not n.endswith("lm_head")
        ]
        if not lm:
            raise SafeAdaptError("LoRA: the model has no linear layers to adapt")
        targets = "^(" + "|".join(re.escape(n) for n in lm) + ")$"
    return LoraConfig(
        r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout, target_modules=targets,
        bias="none", task_type="CAUSAL_LM",
    )


def config_kwargs(opts: TrainOptions, work_dir: Path) -> dict[str, Any]:
    """TrainingArguments shared by SFTConfig / DPOConfig. CPU-sane unless `trl_defaults`."""
    import torch

    cuda = torch.cuda.is_available()
    kw: dict[str, Any] = dict(
        output_dir=str(work_dir),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        learning_rate=opts.lr,
        per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        warmup_steps=opts.warmup_ratio,
        lr_scheduler_type=opts.scheduler,
        weight_decay=opts.weight_decay,
        max_grad_norm=opts.max_grad_norm,
        optim=opts.optim,
        seed=opts.seed,
        data_seed=opts.seed,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        use_cpu=not cuda,
        disable_tqdm=not progress_enabled(),
    )
    if opts.mixed_precision not in ("no", "bf16", "fp16"):
        raise SafeAdaptError(f"mixed_precision must be no, bf16 or fp16, not {opts.mixed_precision!r}")
    if not opts.trl_defaults:
        kw.update(
            bf16=opts.mixed_precision == "bf16",
            fp16=opts.mixed_precision == "fp16",
            activation_checkpointing=opts.activation_checkpointing,
            torch_compile=False,
            dataloader_num_workers=0,
            dataloader_pin_memory=cuda,
            logging_strategy="steps" if opts.logging_steps > 0 else "no",
            logging_steps=max(opts.logging_steps, 1),
            logging_nan_inf_filter=False,
            skip_memory_metrics=True,
            include_num_input_tokens_seen="no",
        )
    kw.update(opts.extra_args)
    return kw


def check_out(out_dir: str | Path, opts: TrainOptions) -> Path:
    from safeadapt.core.atomic import check_output_dir

    return check_output_dir(out_dir, overwrite=opts.overwrite)


def save_trained(
    trainer: Any, processing_class: Any, out_dir: Path, opts: TrainOptions, meta: dict[str, Any]
) -> Path:
    """Write the trained model (LoRA merged unless `merge_lora=False`) + tokenizer/processor +
    `safeadapt_train.json` atomically; only the main process writes in multi-process runs."""
    from safeadapt.core.atomic import atomic_dir, atomic_write_json
    from safeadapt.core.provenance import provenance

    model = trainer.model
    accel = getattr(trainer, "accelerator", None)
    if accel is not None:
        model = accel.unwrap_model(model)
    merged = False
    if opts.lora and opts.merge_lora and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
        merged = True
    if accel is None or accel.is_main_process:
        meta = dict(meta)
        meta["lora_merged"] = merged
        meta["log_history"] = [h for h in trainer.state.log_history]
        meta["global_step"] = trainer.state.global_step
        meta["world_size"] = getattr(trainer.args, "world_size", 1)
        with atomic_dir(out_dir, overwrite=opts.overwrite) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            processing_class.save_pretrained(tmp)
            atomic_write_json(
                tmp / "safeadapt_train.json",
                provenance(config=opts.model_dump(), inputs=meta.pop("inputs", {}), timings=meta.pop("timings", {}))
                | {"train": meta},
            )
    if accel is not None:
        accel.wait_for_everyone()
    return Path(out_dir)


def input_fingerprints(model: str | Path, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Provenance of a run's inputs: the model reference with a fast content fingerprint (size +
    head/tail of each file), and a hash of the rows' text and image sizes."""
    from safeadapt.core.provenance import hash_path, stable_hash

    p = Path(model)
    out = {"model": str(model)}
    if p.exists():
        out["model_fingerprint"] = hash_path(p, max_bytes=1 << 20)
    summary = [
        {k: v for k, v in r.items() if k != "images"}
        | {"image_sizes": [getattr(i, "size", None) for i in r.get("images", [])]}
        for r in rows
    ]
    out["rows_sha256"] = stable_hash(summary)
    out["rows"] = str(len(rows))
    return out


class StepClock:
    """Wall-clock and process CPU seconds per phase, for provenance (`<phase>` and `<phase>_cpu`)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now, cnow = time.perf_counter(), time.process_time()
        self.marks[name] = round(now - self.t0, 4)
        self.marks[f"{name}_cpu"] = round(cnow - self.c0, 4)
        self.t0, self.c0 = now, cnow
