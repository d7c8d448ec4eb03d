"""Calibration rows: calibration datasets (eval dataset SPECs, safeadapt.data.loaders) read and
tokenised with loss on response tokens only (images kept for VLMs: `vision`), and padded batches."""

from __future__ import annotations

import random
from typing import Any, Iterator

from safeadapt.core.errors import SafeAdaptError


def calibration_rows(spec: Any, n: int, seed: int, what: str) -> list[list[dict[str, Any]]]:
    """Up to `n` chats from dataset SPEC (seeded sample). A sample without an assistant turn gets its
    `reference` as the response when it has one; else the whole chat is scored (documented). A
    sample's images become image parts (`{"type": "image", "path": ...}`) of its first user turn."""
    from safeadapt.data.loaders import load_samples
    from safeadapt.repair.calibrate.vision import with_image_paths

    samples = list(load_samples(spec))
    if not samples:
        raise SafeAdaptError(f"calibration set {what} ({spec}) is empty")
    if n and len(samples) > n:
        idx = sorted(random.Random(seed).sample(range(len(samples)), n))
        samples = [samples[i] for i in idx]
    rows = []
    for s in samples:
        msgs = s.chat()
        if msgs[-1]["role"] != "assistant" and s.reference and not s.choices:
            msgs = msgs + [{"role": "assistant", "content": s.reference}]
        try:
            rows.append(with_image_paths(msgs, [str(p) for p in s.images]))
        except SafeAdaptError as e:
            raise SafeAdaptError(f"{what} ({spec}) sample {s.id}: {e}") from None
    return rows


def tokenize(proc: Any, rows: list[list[dict[str, Any]]], max_length: int, what: str,
             model: str | None = None) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per row: labels on assistant tokens (-100 elsewhere); a row with no
    assistant turn is scored over all its tokens. `proc`: the model's tokenizer or processor. Rows
    with images on a VLM go through the processor (`vision.Row`s carrying pixel_values);
    rows with images on a text-only model are an error."""
    from safeadapt.repair.calibrate.vision import image_paths, supports_images, tokenize_vision
    from safeadapt.train.chat import tokenize_chat_rows
    from safeadapt.train.common import tokenizer_of

    if any(image_paths(r) for r in rows):
        if not supports_images(proc):
            first = next(p for r in rows for p in image_paths(r))
            raise SafeAdaptError(
                f"{what}: rows carry images (e.g. {first}) but the scored model {model or ''} is text-only "
                "(no image processor); give text rows or score a VLM (set_difference: score_model: adapted)"
            )
        vrows: list[tuple[list[int], list[int]]] = list(tokenize_vision(proc, rows, max_length, what))
        if not vrows:
            raise SafeAdaptError(f"{what}: no row left with tokens to score")
        return vrows
    tokenizer = tokenizer_of(proc)

    with_resp = [r for r in rows if any(m["role"] == "assistant" for m in r)]
    out: list[tuple[list[int], list[int]]] = []
    if with_resp:
        cols, _ = tokenize_chat_rows(tokenizer, with_resp, max_length)
        out += list(zip(cols["input_ids"], cols["labels"]))
    for r in rows:
        if not any(m["role"] == "assistant" for m in r):
            ids = tokenizer(tokenizer.apply_chat_template(r, tokenize=False), add_special_tokens=False)["input_ids"][
                :max_length
            ]
            if ids:
                out.append((list(ids), list(ids)))
    if not out:
        raise SafeAdaptError(f"calibration set {what}: no row left with tokens to score")
    return out


#: the calibration pass's version, folded into the cache key of every study stage whose repair scores
#: weights on data: bump it when the scores change for the same inputs (2: Wanda reads the positions
#: that predict a response token, the last prompt position included, not the response tokens themselves)
CALIBRATION_VERSION = "2"

def batches(rows: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int) -> Iterator[dict[str, Any]]:
    """Right-padded batches: input_ids, attention_mask, labels, `scored` (the positions predicting a
    response token: each response token's predecessor, so the last prompt position and not the last
    response token) and
    `vision` (the rows' image tensors concatenated, for the model's forward; empty for text rows)."""
    import torch

    from safeadapt.repair.calibrate.vision import vision_of

    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        T = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), T), pad_id, dtype=torch.long)
        lab = torch.full((len(chunk), T), -100, dtype=torch.long)
        att = torch.zeros((len(chunk), T), dtype=torch.long)
        for j, (x, y) in enumerate(chunk):
            ids[j, : len(x)] = torch.tensor(x)
            lab[j, : len(y)] = torch.tensor(y)
            att[j, : len(x)] = 1
        vis = [vision_of(r) for r in chunk if vision_of(r)]  # LLaVA fills image tokens in batch order
        if vis and any(v[k].shape[1:] != vis[0][k].shape[1:] for v in vis for k in vis[0]):
            raise SafeAdaptError(f"calibration rows {i}-{i + len(chunk) - 1}: their image tensors differ in shape "
                                 "(per-image resolution); set calibration.batch_size: 1")
        vision = {k: torch.cat([v[k] for v in vis]) for k in vis[0]} if vis else {}
        # the positions whose outputs predict a response token (labels shift by one in a causal LM):
        # the last prompt position, where the model decides to answer or refuse, is one of them
        scored = torch.zeros_like(lab, dtype=torch.bool)
        scored[:, :-1] = lab[:, 1:] != -100
        yield {"input_ids": ids, "attention_mask": att, "labels": lab, "scored": scored, "vision": vision}
