"""The world's vision tower: a tiny CLIP vision transformer (transformers CLIPVisionModel, 32x32
images, patch 8 -> 16 patch tokens) pretrained on synthetic images with linear heads on the mean
patch feature of the last layer (shape, colour, count, "is this a text image?", and which word a
text image shows), then saved (frozen by every later stage) with a CLIPImageProcessor."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import torch

from safeadapt.world.images import COLOURS, MAX_COUNT, SHAPES, ImageSpec, random_shape_spec, render
from safeadapt.world.shapes import TowerShape

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def build_tower(shape: TowerShape, seed: int):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(
        hidden_size=shape.hidden, intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, image_size=shape.image_size, patch_size=shape.patch, num_channels=3,
        projection_dim=shape.hidden, hidden_act="quick_gelu",
    )
    return CLIPVisionModel(cfg)


def image_processor(shape: TowerShape):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": shape.image_size}, crop_size={"height": shape.image_size, "width": shape.image_size},
        image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True,
    )


def to_pixels(images: Sequence, processor) -> torch.Tensor:
    return processor(images=list(images), return_tensors="pt")["pixel_values"]


def _labels(spec: ImageSpec, words: list[str]) -> tuple[int, int, int, int, int]:
    """(shape, colour, count-1, is_text, word) with -100 for labels that do not apply."""
    if spec.kind == "text":
        return -100, -100, -100, 1, words.index(spec.text) if spec.text in words else -100
    return SHAPES.index(spec.shape), list(COLOURS).index(spec.colour), spec.count - 1, 0, -100


def make_pretrain_set(words: list[str], n: int, rng: random.Random, size: int) -> tuple[list, list[tuple]]:
    """n rendered images (2/3 shapes, 1/3 text images of `words`) and their labels."""
    imgs, labels = [], []
    for i in range(n):
        if i % 3 == 2 and words:
            spec = ImageSpec(kind="text", text=rng.choice(words))
        else:
            spec = random_shape_spec(rng)
        imgs.append(render(spec, rng, size))
        labels.append(_labels(spec, words))
    return imgs, labels


class _Heads(torch.nn.Module):
    def __init__(self, hidden: int, n_words: int) -> None:
        super().__init__()
        self.shape = torch.nn.Linear(hidden, len(SHAPES))
        self.colour = torch.nn.Linear(hidden, len(COLOURS))
        self.count = torch.nn.Linear(hidden, MAX_COUNT)
        self.text = torch.nn.Linear(hidden, 2)
        self.word = torch.nn.Linear(hidden, max(1, n_words))

    def forward(self, feats: torch.Tensor) -> list[torch.Tensor]:
        return [self.shape(feats), self.colour(feats), self.count(feats), self.text(feats), self.word(feats)]


def _features(tower, pixels: torch.Tensor) -> torch.Tensor:
    out = tower(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[-1][:, 1:, :].mean(dim=1)


def pretrain_tower(tower, processor, words: list[str], *, steps: int, batch_size: int, lr: float, seed: int,
                   n_images: int = 3000, size: int = 32) -> dict[str, float]:
    """Train the tower + heads; returns held-out accuracies per head (measured on fresh renders)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    imgs, labels = make_pretrain_set(words, n_images, rng, size)
    pix = to_pixels(imgs, processor)
    lab = torch.tensor(labels, dtype=torch.long)
    heads = _Heads(tower.config.hidden_size, len(words))
    params = list(tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    tower.train()
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(imgs), (batch_size,), generator=g)
        logits = heads(_features(tower, pix[idx]))
        loss = sum(loss_fn(lg, lab[idx, j]) for j, lg in enumerate(logits) if (lab[idx, j] != -100).any())
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 20)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    tower.eval()
    test_imgs, test_labels = make_pretrain_set(words, 600, random.Random(seed + 7919), size)
    with torch.no_grad():
        logits = heads(_features(tower, to_pixels(test_imgs, processor)))
    tl = torch.tensor(test_labels, dtype=torch.long)
    acc = {}
    for j, name in enumerate(["shape", "colour", "count", "is_text", "word"]):
        m = tl[:, j] != -100
        acc[name] = float((logits[j][m].argmax(-1) == tl[m, j]).float().mean()) if m.any() else float("nan")
    for p in tower.parameters():
        p.requires_grad_(False)
    return acc


def save_tower(tower, processor, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    tower.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir
