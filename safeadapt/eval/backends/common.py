"""Helpers shared by every backend: per-request seed derivation, image loading/encoding and the
conversion of (messages, images) into the content-part chat format used by VLM chat templates."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError


def derive_seed(seed: int, key: str) -> int:
    """A 63-bit seed from (run seed, request key): the same request gets the same random stream
    whatever batch it lands in or whichever order requests arrive."""
    h = hashlib.sha256(f"{int(seed)}\x00{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") & ((1 << 63) - 1)


def load_image(img: Any, *, where: str = "") -> Any:
    """A PIL RGB image from a path or a PIL image; unreadable files give a one-line error."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(img, Image.Image):
        return img.convert("RGB") if img.mode != "RGB" else img
    p = Path(str(img))
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as e:
        suffix = f" ({where})" if where else ""
        reason = "not found" if not p.exists() else type(e).__name__
        raise SafeAdaptError(f"unreadable image {p}{suffix}: {reason}") from None


def image_digest(img: Any) -> str:
    """Content hash of an image given as a path (file bytes) or a PIL image (pixels)."""
    from PIL import Image

    if isinstance(img, Image.Image):
        h = hashlib.sha256(f"{img.mode}{img.size}".encode())
        h.update(img.tobytes())
        return h.hexdigest()
    p = Path(str(img))
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        raise SafeAdaptError(f"unreadable image {p}: not found") from None


def image_data_url(img: Any) -> str:
    """PNG data URL (for OpenAI-style `image_url` content parts)."""
    im = load_image(img)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def with_image_parts(messages: list[dict[str, Any]], n_images: int) -> list[dict[str, Any]]:
    """Attach `n_images` `{"type": "image"}` parts to the first user turn (content-part format the
    transformers processors' chat templates expect); other turns keep string content."""
    if n_images == 0:
        return [dict(m) for m in messages]
    out: list[dict[str, Any]] = []
    placed = False
    for m in messages:
        if not placed and m["role"] == "user":
            parts: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
            parts.append({"type": "text", "text": m["content"]})
            out.append({"role": "user", "content": parts})
            placed = True
        else:
            out.append(dict(m))
    if not placed:
        raise SafeAdaptError("request has images but no user turn to attach them to")
    return out


def render_chat(processor: Any, messages: list[dict[str, Any]], n_images: int = 0, *,
                add_generation_prompt: bool = True) -> str:
    """The chat text a (VLM) processor or tokenizer renders for `messages` with `n_images` images on
    the first user turn: the processor's template with image parts, else the tokenizer's template with
    the image token put before the user text, else a plain `Role: text` transcript (base models)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    conv = with_image_parts(messages, n_images)
    kw = {"add_generation_prompt": add_generation_prompt, "tokenize": False}
    if n_images and getattr(processor, "chat_template", None):
        return processor.apply_chat_template(conv, **kw)
    if getattr(tokenizer, "chat_template", None):
        if n_images:  # tokenizer template with string content: put the image tokens in the text
            token = getattr(processor, "image_token", "<image>")
            conv = with_image_parts(messages, 0)
            for m in conv:
                if m["role"] == "user":
                    m["content"] = (token + "\n") * n_images + m["content"]
                    break
        return tokenizer.apply_chat_template(conv, **kw)
    text = "".join(f"{m['role'].capitalize()}: {m['content'] if isinstance(m['content'], str) else ''}\n" for m in conv)
    return text + ("Assistant:" if add_generation_prompt else "")
