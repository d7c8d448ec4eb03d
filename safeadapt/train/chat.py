"""Chat rows for training: validation and normalisation of `messages` rows (text or image parts,
images loaded relative to the data file) and assistant-only labels for any chat template (the
assistant spans found by rendering, mapped onto token offsets)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from safeadapt.core.errors import SafeAdaptError

IMAGE_TOKEN = "<image>"
ROLES = ("system", "user", "assistant")


def _where(src: str | None, i: int, row: Any = None) -> str:
    """`file:line` when the row carries its JSONL line number (`_line`), else `source row i`."""
    line = row.get("_line") if isinstance(row, dict) else None
    if src and line:
        return f"{src}:{line}"
    return f"{src} row {i}" if src else f"row {i}"


def load_train_image(img: Any, *, base_dir: Path | None, where: str) -> Any:
    """A PIL image from a PIL image or a path (relative paths resolved against `base_dir`)."""
    from PIL import Image

    if isinstance(img, Image.Image):
        return img.convert("RGB") if img.mode != "RGB" else img
    if isinstance(img, (str, os.PathLike)):
        p = Path(img)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        if not p.is_file():
            raise SafeAdaptError(f"{where}: image file not found: {p}")
        try:
            with Image.open(p) as im:
                return im.convert("RGB")
        except OSError as e:
            raise SafeAdaptError(f"{where}: cannot read image {p}: {e}") from None
    raise SafeAdaptError(f"{where}: an image must be a path or a PIL image, got {type(img).__name__}")


def _content_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Normalise message content to TRL's structured parts. A string with leading `<image>`
    markers becomes image parts followed by a text part."""
    if isinstance(content, str):
        parts: list[dict[str, Any]] = []
        text = content
        while text.lstrip().startswith(IMAGE_TOKEN):
            text = text.lstrip()[len(IMAGE_TOKEN):]
            parts.append({"type": "image", "text": None})
        if IMAGE_TOKEN in text:
            raise SafeAdaptError(f"{where}: `<image>` may only lead a message's text; use content parts instead")
        parts.append({"type": "text", "text": text.lstrip("\n") if parts else text})
        return parts
    if isinstance(content, list):
        out = []
        for p in content:
            if not isinstance(p, dict) or p.get("type") not in ("image", "text"):
                raise SafeAdaptError(f"{where}: content parts must be {{'type': 'image'|'text', ...}}")
            if p["type"] == "text":
                if not isinstance(p.get("text"), str):
                    raise SafeAdaptError(f"{where}: a text part needs a string 'text'")
                out.append({"type": "text", "text": p["text"]})
            else:
                out.append({"type": "image", "text": None})
        return out
    raise SafeAdaptError(f"{where}: message content must be a string or a list of parts")


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(p["text"] for p in parts if p["type"] == "text")


def check_messages(messages: Any, where: str, *, need_assistant: bool = True) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise SafeAdaptError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or "content" not in m:
            raise SafeAdaptError(f"{where}: each message needs role in {ROLES} and content")
    if need_assistant and not any(m["role"] == "assistant" for m in messages):
        raise SafeAdaptError(f"{where}: no assistant turn to train on")
    return messages


def normalise_chat_rows(
    rows: Iterable[dict[str, Any]], *, base_dir: Path | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    """Validate SFT rows and return `{"messages": [{role, parts}], "images": [PIL]}` with every
    content in parts form. The number of image parts must match the number of images; when a
    row has images but no image parts, image parts are put before the first user text (TRL's
    convention)."""
    out = []
    for i, row in enumerate(rows):
        where = _where(source, i, row)
        if not isinstance(row, dict) or "messages" not in row:
            raise SafeAdaptError(f"{where}: a row needs a 'messages' list")
        msgs = check_messages(row["messages"], where)
        images = [load_train_image(x, base_dir=base_dir, where=where) for x in (row.get("images") or [])]
        norm = [{"role": m["role"], "content": _content_parts(m["content"], where)} for m in msgs]
        n_parts = sum(1 for m in norm for p in m["content"] if p["type"] == "image")
        if images and n_parts == 0:
            first_user = next((m for m in norm if m["role"] == "user"), None)
            if first_user is None:
                raise SafeAdaptError(f"{where}: images given but no user turn to attach them to")
            first_user["content"] = [{"type": "image", "text": None} for _ in images] + first_user["content"]
            n_parts = len(images)
        if n_parts != len(images):
            raise SafeAdaptError(f"{where}: {n_parts} image placeholders but {len(images)} images")
        out.append({"messages": norm, "images": images})
    if not out:
        raise SafeAdaptError(f"{source or 'training data'}: no rows")
    return out


def as_plain_messages(norm_messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Parts-form messages (text only) back to plain string content for a text tokenizer."""
    return [{"role": m["role"], "content": _text_of(m["content"])} for m in norm_messages]


# ----------------------------------------------------------------------------- tokenisation


def tokenize_chat_rows(
    tokenizer: Any, rows: list[list[dict[str, str]]], max_length: int, *, chat_template: str | None = None
) -> tuple[dict[str, list[list[int]]], int]:
    """Tokenise chat rows once, with labels on assistant tokens only (-100 elsewhere).

    Works with any chat template: the span of assistant turn i is found by rendering the chat up
    to turn i with the generation prompt and up to turn i inclusive; the characters between the
    two renderings (the reply and its end-of-turn marker) are trained, located in the full
    rendering through the fast tokenizer's offsets. Rows are truncated to `max_length` (keeping
    the start); rows left without a trained token are dropped. Returns the columns and the
    number of rows dropped."""
    if not getattr(tokenizer, "chat_template", None) and chat_template is None:
        raise SafeAdaptError("the tokenizer has no chat template; cannot format chat rows")
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    for msgs in rows:
        def render(m: list[dict[str, Any]], gen: bool) -> str:
            return tokenizer.apply_chat_template(
                m, tokenize=False, add_generation_prompt=gen, chat_template=chat_template
            )

        full, row_spans = assistant_spans(render, msgs)
        texts.append(full)
        spans.append(row_spans)
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    ids_col: list[list[int]] = []
    lab_col: list[list[int]] = []
    dropped = 0
    for ids, offs, row_spans in zip(enc["input_ids"], enc["offset_mapping"], spans):
        labels = span_labels(ids, offs, row_spans)
        ids, labels = ids[:max_length], labels[:max_length]
        if all(x == -100 for x in labels):
            dropped += 1
            continue
        ids_col.append(list(ids))
        lab_col.append(labels)
    return {"input_ids": ids_col, "labels": lab_col}, dropped


def assistant_spans(render: Any, msgs: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """(full chat text, character spans of each assistant reply and its end-of-turn marker), from
    `render(messages, add_generation_prompt)`: the text between the rendering up to turn j with the
    generation prompt and the rendering up to turn j inclusive."""
    full = render(msgs, False)
    spans = []
    for j, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        s = _common_prefix(render(msgs[:j], True) if j else "", full)
        e = _common_prefix(render(msgs[: j + 1], False), full)
        if e > s:
            spans.append((s, e))
    return full, spans


def span_labels(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Token ids inside an assistant span (by the fast tokenizer's character offsets), -100 elsewhere."""
    return [t if any(s <= a < e for s, e in spans) and b > a else -100 for t, (a, b) in zip(ids, offsets)]


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
