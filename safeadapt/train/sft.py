"""Supervised fine-tuning (full or LoRA) of text LMs and LLaVA-style VLMs through TRL's
`SFTTrainer`, with loss on assistant tokens only and CPU-sane defaults. Saves a full HF
checkpoint (safetensors + tokenizer/processor + chat template) atomically."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from safeadapt.core.console import quiet_trainer
from safeadapt.core.errors import SafeAdaptError
from safeadapt.train.chat import as_plain_messages, normalise_chat_rows, tokenize_chat_rows
from safeadapt.train.common import (
    StepClock,
    TrainOptions,
    apply_freezing,
    check_out,
    config_kwargs,
    input_fingerprints,
    is_processor,
    load_for_training,
    lora_config,
    save_trained,
    tokenizer_of,
)


class SFTOptions(TrainOptions):
    """SFT knobs (see `TrainOptions`); defaults: 1 epoch, lr 2e-5, batch 8, warmup 3%, cosine."""


def sft(
    model: str | Path,
    data: list[dict[str, Any]],
    out_dir: str | Path,
    opts: SFTOptions | None = None,
    *,
    base_dir: str | Path | None = None,
    source: str | None = None,
) -> Path:
    """Fine-tune `model` on chat rows and save a full HF dir at `out_dir`.

    Rows: `{"messages": [{"role", "content"}...], "images": [PIL.Image | path, ...]}`. Content is
    a string, or a list of `{"type": "image"}` / `{"type": "text", "text": ...}` parts (TRL's VLM
    format); a string may start with `<image>` markers. Loss is on assistant tokens only.
    Text-only rows are tokenised once up front (any chat template); rows with images go through
    TRL's vision collator on the fly, as prompt (all turns before the last assistant turn) ->
    completion (the last assistant turn)."""
    opts = opts or SFTOptions()
    out_dir = check_out(out_dir, opts)
    clock = StepClock()
    from safeadapt.core.runtime import set_seed, set_threads

    set_threads(opts.threads)
    set_seed(opts.seed)
    rows = normalise_chat_rows(data, base_dir=Path(base_dir) if base_dir else None, source=source)
    clock.mark("rows")
    mdl, proc = load_for_training(model, opts)
    clock.mark("load")
    has_images = any(r["images"] for r in rows)
    if has_images and not is_processor(proc):
        raise SafeAdaptError(f"{source or 'training data'}: rows carry images but {model} is a text-only model")
    counts = apply_freezing(mdl, opts.train_modules, opts.freeze_modules)
    dataset, dropped = _build_dataset(rows, proc, opts, vision=has_images)
    clock.mark("tokenize")
    with tempfile.TemporaryDirectory(prefix="safeadapt-sft-") as work:  # Trainer's output_dir; nothing kept
        trainer = _make_trainer(mdl, proc, dataset, opts, Path(work), vision=has_images)
        counts["trainable"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        clock.mark("trainer")
        trainer.train()
        clock.mark("train")
    meta = {
        "kind": "sft",
        "base_model": str(model),
        "rows": len(rows),
        "rows_dropped_by_truncation": dropped,
        "vision_rows": sum(1 for r in rows if r["images"]),
        "params": counts,
        "inputs": input_fingerprints(model, rows),
        "timings": clock.marks,
    }
    return save_trained(trainer, proc, Path(out_dir), opts, meta)


def _build_dataset(rows: list[dict[str, Any]], proc: Any, opts: SFTOptions, *, vision: bool) -> tuple[Any, int]:
    from datasets import Dataset

    if not vision:
        tok = tokenizer_of(proc)
        template = None if getattr(tok, "chat_template", None) else getattr(proc, "chat_template", None)
        cols, dropped = tokenize_chat_rows(
            tok, [as_plain_messages(r["messages"]) for r in rows], opts.max_length, chat_template=template
        )
        if not cols["input_ids"]:
            raise SafeAdaptError(f"every row lost its assistant tokens to truncation at max_length={opts.max_length}")
        return Dataset.from_dict(cols), dropped
    # Vision rows: prompt/completion split at the last assistant turn; TRL's vision collator renders
    # the chat template, expands <image> and masks the prompt. The Arrow dataset only holds row
    # indices: PIL images stay in memory instead of being PNG-encoded into Arrow (~3.5 ms a row).
    recs = []
    for i, r in enumerate(rows):
        msgs = r["messages"]
        last = max(j for j, m in enumerate(msgs) if m["role"] == "assistant")
        if last != len(msgs) - 1:
            raise SafeAdaptError(f"row {i}: an image row must end with the assistant turn to train on")
        recs.append({"prompt": msgs[:last], "completion": msgs[last:], "images": r["images"]})
    ds = Dataset.from_dict({"row": list(range(len(recs)))})
    ds.safeadapt_records = recs  # type: ignore[attr-defined]
    return ds, 0


class IndexedVisionCollator:
    """Looks rows up by index and hands fresh copies to TRL's `DataCollatorForVisionLanguageModeling`
    (prompt-completion mode, loss on the completion only)."""

    def __init__(self, records: list[dict[str, Any]], processor: Any, max_length: int | None) -> None:
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        self.records = records
        self.inner = DataCollatorForVisionLanguageModeling(
            processor=processor, max_length=max_length, completion_only_loss=True
        )

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return self.inner([dict(self.records[int(b["row"])]) for b in batch])


def _make_trainer(model: Any, proc: Any, dataset: Any, opts: SFTOptions, work: Path, *, vision: bool) -> Any:
    from trl import SFTConfig, SFTTrainer

    kw = config_kwargs(opts, work)
    kw.update(max_length=opts.max_length, packing=False, dataset_num_proc=None)
    kw.update(dataset_kwargs={"skip_prepare_dataset": True})
    collator = None
    if vision:
        kw.update(remove_unused_columns=False)
        collator = IndexedVisionCollator(dataset.safeadapt_records, proc, opts.max_length)
    args = SFTConfig(**kw)
    peft_cfg = lora_config(model, opts) if opts.lora else None
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=proc, peft_config=peft_cfg,
        data_collator=collator,
    )
    quiet_trainer(trainer)
    if opts.lora and (opts.train_modules or opts.freeze_modules):
        # PEFT freezes the base; keep the caller's extra trainable modules (e.g. a projector) trainable
        for n, p in trainer.model.named_parameters():
            if opts.train_modules and any(pat in n for pat in opts.train_modules) and "lora_" not in n:
                p.requires_grad_(not (opts.freeze_modules and any(f in n for f in opts.freeze_modules)))
    return trainer
