"""Tensor-name maps between a LLaVA-style VLM and its text-only language model.

transformers 4.x saved LLaVA as `language_model.model.*` / `language_model.lm_head.*` /
`vision_tower.*` / `multi_modal_projector.*`; 5.x saves `model.language_model.*` / `lm_head.*` /
`model.vision_tower.*` / `model.multi_modal_projector.*` (and renames 4.x keys on load). Both map to
the causal LM's `model.*` / `lm_head.*`, so a VLM's language tower can be merged with an LLM."""

from __future__ import annotations

import re
from typing import Any, Iterable, Literal, Mapping, TypeVar

Layout = Literal["llm", "vlm_v4", "vlm_v5"]
Part = Literal["language", "vision", "projector", "other"]
T = TypeVar("T")

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def detect_layout(names: Iterable[str]) -> Layout:
    """Which naming a checkpoint uses, from its tensor names."""
    names = list(names)
    if any(
        n.startswith(("model.language_model.", "model.vision_tower.", "model.multi_modal_projector.")) for n in names
    ):
        return "vlm_v5"
    if any(n.startswith(("language_model.", "vision_tower.", "multi_modal_projector.")) for n in names):
        return "vlm_v4"
    return "llm"


def vlm_part(name: str) -> Part:
    """Which tower a VLM tensor belongs to (either layout)."""
    if name.startswith(("vision_tower.", "model.vision_tower.")):
        return "vision"
    if name.startswith(("multi_modal_projector.", "model.multi_modal_projector.")):
        return "projector"
    if name.startswith(("language_model.", "model.language_model.", "lm_head.")):
        return "language"
    return "other"


def vlm_to_llm_name(name: str) -> str | None:
    """`model.language_model.layers.0.x` / `language_model.model.layers.0.x` -> `model.layers.0.x`;
    lm_head in either layout -> `lm_head.*`; vision tower / projector -> None."""
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model.") :]
    if name.startswith("language_model.model."):
        return "model." + name[len("language_model.model.") :]
    if name.startswith("language_model.lm_head."):
        return name[len("language_model.") :]
    if name.startswith("language_model."):  # 4.x variants without the inner `.model`
        return "model." + name[len("language_model.") :]
    if name.startswith("lm_head."):
        return name
    return None


def llm_to_vlm_name(name: str, layout: Layout = "vlm_v5") -> str:
    """Inverse of `vlm_to_llm_name` for a given VLM layout."""
    if layout == "llm":
        return name
    if name.startswith("lm_head."):
        return name if layout == "vlm_v5" else "language_model." + name
    if name.startswith("model."):
        rest = name[len("model.") :]
        return ("model.language_model." if layout == "vlm_v5" else "language_model.model.") + rest
    return name


def to_canonical(name: str, layout: Layout) -> str:
    """A layout-independent key: LLM names for the language tower, `vision_tower.*` /
    `multi_modal_projector.*` (no `model.` prefix) for the rest."""
    if layout == "llm":
        return name
    llm = vlm_to_llm_name(name)
    if llm is not None:
        return llm
    if name.startswith("model.vision_tower.") or name.startswith("model.multi_modal_projector."):
        return name[len("model.") :]
    return name


def from_canonical(key: str, layout: Layout) -> str:
    """Inverse of `to_canonical`."""
    if layout == "llm":
        return key
    if key.startswith(("vision_tower.", "multi_modal_projector.")):
        return ("model." + key) if layout == "vlm_v5" else key
    return llm_to_vlm_name(key, layout)


def canonical_part(key: str) -> Part:
    """Tower of a canonical key; VLM-only extras (e.g. LLaVA-NeXT's `image_newline`) are "other"."""
    if key.startswith("vision_tower."):
        return "vision"
    if key.startswith("multi_modal_projector."):
        return "projector"
    if key.startswith(("model.", "lm_head.")):
        return "language"
    return "other"


def layer_index(name: str) -> int | None:
    """Decoder layer index in a tensor name (`...layers.N....`), else None."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def to_runtime_names(sd: Mapping[str, T], cfg: dict[str, Any] | None) -> dict[str, T]:
    """Rename a state dict to the transformers 5 runtime layout (4.x VLM keys -> 5.x)."""
    layout = detect_layout(sd)
    if layout != "vlm_v4":
        return dict(sd)
    return {from_canonical(to_canonical(k, "vlm_v4"), "vlm_v5"): v for k, v in sd.items()}


def text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The language model's config inside a VLM config (or the config itself for an LLM)."""
    return cfg.get("text_config", cfg) if "vision_config" in cfg else cfg
