"""Image-aware calibration rows for LLaVA-style VLMs: a calibration chat keeps its images (image parts
with a `path` on its first user turn, as eval attaches them); the row is rendered by the processor's
chat template (every turn in content-parts form) as eval renders its prompts, tokenised by the model's processor (image
placeholders expanded as the processor
does, `pixel_values` kept with the row), and scored on response tokens only (image positions never
are). For the layer-wise passes, `merge_image_features` puts the vision tower + projector output at
the image-token positions of the text embeddings with transformers' own LLaVA helpers."""

from __future__ import annotations

from typing import Any

from safeadapt.core.errors import SafeAdaptError

#: VLM architectures whose first-layer inputs the layer-wise passes can build (others: whole model)
LAYERWISE_IMAGE_TYPES = ("llava",)


class Row(tuple):
    """(input_ids, labels) of one calibration row; `vision` holds the processor's image tensors
    (`pixel_values`, ...) when the row has images, else None."""

    vision: dict[str, Any] | None

    def __new__(cls, ids: list[int], labels: list[int], vision: dict[str, Any] | None = None) -> "Row":
        row = super().__new__(cls, (ids, labels))
        row.vision = vision
        return row

    def __getnewargs__(self) -> tuple[Any, ...]:  # type: ignore[override]
        return (self[0], self[1], self.vision)


def vision_of(row: Any) -> dict[str, Any]:
    """The image inputs of a row (empty for a text row or a plain (ids, labels) tuple)."""
    return getattr(row, "vision", None) or {}


def image_paths(msgs: list[dict[str, Any]]) -> list[str]:
    """Paths of the image parts of a calibration chat, in order."""
    return [
        p["path"] for m in msgs if not isinstance(m["content"], str) for p in m["content"] if p.get("type") == "image"
    ]


def plain_messages(msgs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chat with string content (text parts joined; image parts dropped)."""
    return [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str)
             else "".join(p["text"] for p in m["content"] if p.get("type") == "text")} for m in msgs]


def with_image_paths(msgs: list[dict[str, str]], paths: list[str]) -> list[dict[str, Any]]:
    """Attach `paths` as image parts to the first user turn (eval's placement)."""
    from safeadapt.eval.backends.common import with_image_parts

    out = with_image_parts(msgs, len(paths))
    if paths:
        parts = next(m["content"] for m in out if not isinstance(m["content"], str))
        for part, p in zip(parts, paths):
            part["path"] = str(p)
    return out


def supports_images(proc: Any) -> bool:
    """A processor with an image processor (a VLM's), as eval's HF backend decides."""
    return getattr(proc, "image_processor", None) is not None


def tokenize_vision(proc: Any, rows: list[list[dict[str, Any]]], max_length: int, what: str) -> list[Row]:
    """Rows for a VLM: each chat rendered as eval renders it (images on the first user turn), labels on
    assistant tokens (a row without an assistant turn: all its text tokens), then the processor's
    encoding with the image placeholders expanded; image positions get -100. `max_length` counts text
    tokens (each image's placeholders come on top); a row whose images would be cut is dropped, as are
    rows left without a scored token."""
    from safeadapt.eval.backends.common import render_chat, with_image_parts
    from safeadapt.train.chat import assistant_spans, span_labels
    from safeadapt.train.common import tokenizer_of

    tok = tokenizer_of(proc)
    image_id = tok.convert_tokens_to_ids(getattr(proc, "image_token", "<image>"))
    out: list[Row] = []
    for i, msgs in enumerate(rows):
        paths, plain = image_paths(msgs), plain_messages(msgs)

        def render(m: list[dict[str, str]], gen: bool) -> str:
            n = len(paths) if any(x["role"] == "user" for x in m) else 0
            if n and getattr(proc, "chat_template", None):  # every turn in parts form (llava-hf templates expect it)
                return proc.apply_chat_template(
                    _all_parts(with_image_parts(m, n)), add_generation_prompt=gen, tokenize=False
                )
            return render_chat(proc, m, n, add_generation_prompt=gen)

        if any(m["role"] == "assistant" for m in plain):
            full, spans = assistant_spans(render, plain)
        else:
            full, spans = render(plain, False), None
        enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
        labels_u = enc["input_ids"] if spans is None else span_labels(enc["input_ids"], enc["offset_mapping"], spans)
        text = [(t, y) for t, y in zip(enc["input_ids"], labels_u) if t != image_id]
        vision = None
        ids = list(enc["input_ids"])
        if paths:
            vision = _encode_images(proc, full, paths, f"{what} row {i}")
            ids = vision.pop("input_ids")
        row = _expand_labels(ids, text, image_id, max_length, f"{what} row {i}")
        if row is not None and any(y != -100 for y in row[1]):
            out.append(Row(row[0], row[1], vision if row[2] else None))
    return out


def _all_parts(conv: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """String contents as one text part each (image turns are already in parts form)."""
    return [
        dict(m, content=[{"type": "text", "text": m["content"]}]) if isinstance(m["content"], str) else m for m in conv
    ]


def _encode_images(proc: Any, text: str, paths: list[str], where: str) -> dict[str, Any]:
    """The processor's encoding of one rendered row with its images: input_ids (expanded) + image tensors."""
    from safeadapt.eval.backends.common import load_image

    images = [load_image(p, where=where) for p in paths]
    try:
        enc = proc(text=[text], images=images, return_tensors="pt", add_special_tokens=False)
    except ValueError as e:
        raise SafeAdaptError(f"{where}: the processor rejected the row: {' '.join(str(e).split())[:200]}") from None
    out = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
    out["input_ids"] = enc["input_ids"][0].tolist()
    return out


def _expand_labels(ids: list[int], text: list[tuple[int, int]], image_id: int, max_length: int,
                   where: str) -> tuple[list[int], list[int], bool] | None:
    """Labels aligned to the expanded `ids` (-100 at image tokens), cut after `max_length` text tokens;
    None when the cut falls inside or before an image's tokens. The third item: the row keeps images."""
    labels, k = [], 0
    for t in ids:
        if t == image_id:
            labels.append(-100)
            continue
        if k >= len(text) or text[k][0] != t:
            raise SafeAdaptError(
                f"{where}: the processor's tokens differ from the tokenizer's outside the image tokens"
            )
        labels.append(text[k][1])
        k += 1
    cut, n = len(ids), 0
    for j, t in enumerate(ids):
        if t != image_id:
            n += 1
            if n == max_length:
                cut = j + 1
                break
    if image_id in ids[cut:]:
        return None
    return ids[:cut], labels[:cut], image_id in ids[:cut]


def check_layerwise_images(config: dict[str, Any] | None, rows: list[Any]) -> None:
    """NotLayerwise when rows carry images and the VLM is not one whose image merge is built here."""
    from safeadapt.repair.calibrate.common import NotLayerwise

    mtype = (config or {}).get("model_type")
    if any(vision_of(r) for r in rows) and mtype not in LAYERWISE_IMAGE_TYPES:
        raise NotLayerwise(f"image rows on a {mtype} model")


def image_param_names(model: Any) -> list[str]:
    """Parameters of the vision tower and projector (what the image features need)."""
    from safeadapt.io.names import canonical_part
    from safeadapt.repair.calibrate.common import canon_name

    return [n for n, _ in model.named_parameters() if canonical_part(canon_name(n)) in ("vision", "projector")]


def merge_image_features(model: Any, ids: Any, embeds: Any, vision: dict[str, Any]) -> Any:
    """`embeds` with the image features scattered in at the image-token positions of `ids`, as the
    LLaVA forward does (transformers' `get_image_features` and `get_placeholder_mask`); the vision
    tower and projector must be loaded, the language model may stay on the meta device."""
    import torch

    inner = model.model
    feats = inner.get_image_features(**vision, return_dict=True).pooler_output
    feats = torch.cat(list(feats), dim=0).to(embeds.dtype)
    mask = inner.get_placeholder_mask(ids, inputs_embeds=embeds, image_features=feats)
    return embeds.masked_scatter(mask, feats)
