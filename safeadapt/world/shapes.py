"""Sizes of the world's two models, torch-free so the study stage params (world/stages.py) take
their defaults from here without importing torch: one source of truth for the world's sizes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LlmShape:
    """The tiny Llama (world/llm.py)."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 344  # 2.6875 x hidden
    max_positions: int = 256


@dataclass
class TowerShape:
    """The tiny CLIP vision tower (world/vision.py): 32x32 images, patch 8 -> 16 patch tokens."""

    image_size: int = 32
    patch: int = 8
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 128
