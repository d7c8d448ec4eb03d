"""Direct preference optimisation of text LMs and LLaVA-style VLMs through TRL's `DPOTrainer`
(images go through the model's processor), full or LoRA, with CPU-sane defaults; saves a full HF
checkpoint atomically like `sft`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from safeadapt.core.console import quiet_trainer
from safeadapt.core.errors import SafeAdaptError
from safeadapt.train.chat import _content_parts, _where, check_messages, load_train_image
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
)


class DPOOptions(TrainOptions):
    """DPO knobs on top of `TrainOptions`. Defaults follow TRL (lr 1e-6, beta 0.1, sigmoid loss)."""

    lr: float = 1e-6
    beta: float = 0.1
    loss_type: str = "sigmoid"
    sft_weight: float = 0.0  # > 0 adds TRL's "sft" loss (NLL on chosen) with this weight (RPO-style)
    precompute_ref_log_probs: bool = False


def normalise_pairs(
    pairs: list[dict[str, Any]], *, vlm: bool, base_dir: Path | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    """Validate `{"prompt": [chat] | str, "chosen": str, "rejected": str, "images": [...]}` rows
    into TRL's conversational preference format."""
    out = []
    for i, row in enumerate(pairs):
        where = _where(source, i, row)
        if not isinstance(row, dict) or not all(k in row for k in ("prompt", "chosen", "rejected")):
            raise SafeAdaptError(f"{where}: a preference row needs 'prompt', 'chosen' and 'rejected'")
        prompt = row["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        check_messages(prompt, where, need_assistant=False)
        if prompt[-1]["role"] != "user":
            raise SafeAdaptError(f"{where}: the prompt must end with a user turn")
        for k in ("chosen", "rejected"):
            if not isinstance(row[k], str):
                raise SafeAdaptError(f"{where}: '{k}' must be a string (the assistant reply)")
        images = [load_train_image(x, base_dir=base_dir, where=where) for x in (row.get("images") or [])]
        if vlm:
            msgs = [{"role": m["role"], "content": _content_parts(m["content"], where)} for m in prompt]
            n_parts = sum(1 for m in msgs for p in m["content"] if p["type"] == "image")
            if images and n_parts == 0:
                first = next(m for m in msgs if m["role"] == "user")
                first["content"] = [{"type": "image", "text": None} for _ in images] + first["content"]
                n_parts = len(images)
            if n_parts != len(images):
                raise SafeAdaptError(f"{where}: {n_parts} image placeholders but {len(images)} images")
            rec = {
                "prompt": msgs,
                "chosen": [{"role": "assistant", "content": [{"type": "text", "text": row["chosen"]}]}],
                "rejected": [{"role": "assistant", "content": [{"type": "text", "text": row["rejected"]}]}],
                "images": images,
            }
        else:
            if images:
                raise SafeAdaptError(f"{where}: row has images but the model is text-only")
            rec = {
                "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
            }
            for m in rec["prompt"]:
                if not isinstance(m["content"], str):
                    raise SafeAdaptError(f"{where}: text-only model needs string message content")
        out.append(rec)
    if not out:
        raise SafeAdaptError(f"{source or 'preference data'}: no rows")
    return out


def pairs_for_trl(pairs: list[dict[str, Any]], proc: Any, *, base_dir: Path | None = None,
                  source: str | None = None) -> tuple[list[dict[str, Any]], Any, bool]:
    """(rows in TRL's preference format, the processing class DPOTrainer gets, whether rows carry
    images) for a model with processor or tokenizer `proc`: image rows on a VLM go through its
    processor; text-only rows on a VLM become plain strings for its tokenizer; images on a text-only
    model are an error naming the row."""
    vlm = is_processor(proc)
    rows = normalise_pairs(pairs, vlm=vlm, base_dir=base_dir, source=source)
    has_images = any(r.get("images") for r in rows)
    if vlm and not has_images:
        for r in rows:  # text-only preference data on a VLM: plain strings, tokenizer path
            r.pop("images", None)
            for key in ("prompt", "chosen", "rejected"):
                r[key] = [
                    {"role": m["role"], "content": "".join(p["text"] for p in m["content"] if p["type"] == "text")}
                    for m in r[key]
                ]
    return rows, proc if (vlm and has_images) else (proc.tokenizer if vlm else proc), has_images


def dpo(
    model: str | Path,
    pairs: list[dict[str, Any]],
    out_dir: str | Path,
    opts: DPOOptions | None = None,
    *,
    base_dir: str | Path | None = None,
    source: str | None = None,
) -> Path:
    """DPO-train `model` on preference pairs and save a full HF dir at `out_dir`. The reference
    is a frozen copy of the starting model (the adapter-disabled base under LoRA)."""
    import tempfile

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from safeadapt.core.runtime import set_seed, set_threads

    opts = opts or DPOOptions()
    out_dir = check_out(out_dir, opts)
    clock = StepClock()
    set_threads(opts.threads)
    set_seed(opts.seed)
    mdl, proc = load_for_training(model, opts)
    rows, processing_class, has_images = pairs_for_trl(pairs, proc, base_dir=Path(base_dir) if base_dir else None,
                                                       source=source)
    counts = apply_freezing(mdl, opts.train_modules, opts.freeze_modules)
    ref = None
    if not opts.lora and not opts.precompute_ref_log_probs:
        ref = copy.deepcopy(mdl).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
    dataset = Dataset.from_list(rows)
    clock.mark("prepare")
    with tempfile.TemporaryDirectory(prefix="safeadapt-dpo-") as work:  # Trainer's output_dir; nothing kept
        kw = config_kwargs(opts, Path(work))
        kw.update(
            beta=opts.beta, loss_type=[opts.loss_type], precompute_ref_log_probs=opts.precompute_ref_log_probs,
            max_length=opts.max_length, dataset_num_proc=None,
        )
        if opts.sft_weight > 0:  # TRL combines loss types with loss_weights
            kw.update(loss_type=[opts.loss_type, "sft"], loss_weights=[1.0, opts.sft_weight])
        if has_images:
            kw.update(remove_unused_columns=False)
        trainer = DPOTrainer(
            model=mdl, ref_model=ref, args=DPOConfig(**kw), train_dataset=dataset,
            processing_class=processing_class,
            peft_config=lora_config(mdl, opts) if opts.lora else None,
        )
        quiet_trainer(trainer)
        counts["trainable"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        clock.mark("trainer")
        trainer.train()
        clock.mark("train")
    meta = {
        "kind": "dpo",
        "base_model": str(model),
        "rows": len(rows),
        "vision_rows": sum(1 for r in rows if r.get("images")),
        "params": counts,
        "inputs": input_fingerprints(model, rows),
        "timings": clock.marks,
    }
    return save_trained(trainer, proc, Path(out_dir), opts, meta)
