"""The world's evaluation data and training data come from separate seeded streams: changing a
training size leaves every eval file (rows and image bytes) unchanged, changing an eval size leaves
every training file unchanged, and the seed still moves both."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safeadapt.world.data import EVAL_SUITES, DataOptions, generate

TRAIN_FILES = ("llm_pretrain.jsonl", "llm_align.jsonl", "captions.jsonl", "instruct.jsonl", "safety.jsonl", "mtl.jsonl",
               "pairs.jsonl")
BASE = dict(n_captions=12, n_instruct=12, n_instruct_text=6, n_safety_harmful=8, n_safety_benign=8, n_pairs=8,
            n_vqa_eval=6, n_mm_image_text=6, vocab_size=600)


def _digest(root: Path, files: list[str]) -> dict[str, str]:
    """Each file's hash, plus the hash of every image it references (by relative path)."""
    out = {}
    for f in files:
        text = (root / f).read_text()
        out[f] = hashlib.sha256(text.encode()).hexdigest()
        for line in text.splitlines():
            for img in json.loads(line).get("images") or []:
                out[img] = hashlib.sha256((root / img).read_bytes()).hexdigest()
    return out


def _eval(root: Path) -> dict[str, str]:
    return _digest(root, [f"eval/{s}.jsonl" for s in EVAL_SUITES])


def _train(root: Path) -> dict[str, str]:
    return _digest(root, list(TRAIN_FILES))


def test_training_and_eval_streams_are_independent(tmp_path: Path) -> None:
    dirs = {k: tmp_path / k for k in ("base", "more_train", "more_eval", "seed")}
    for d in dirs.values():
        d.mkdir()
    generate(dirs["base"], 3, DataOptions(**BASE))
    generate(dirs["more_train"], 3, DataOptions(**{**BASE, "n_captions": 20, "n_instruct": 7, "n_safety_harmful": 12,
                                                   "n_pairs": 5, "jailbreak_wrap_frac": 0.3}))
    generate(dirs["more_eval"], 3, DataOptions(**{**BASE, "n_vqa_eval": 9, "n_mm_image_text": 3}))
    generate(dirs["seed"], 4, DataOptions(**BASE))
    base_eval, base_train = _eval(dirs["base"]), _train(dirs["base"])
    assert len([k for k in base_eval if k.startswith("images/")]) >= 12  # eval images are compared too
    assert _eval(dirs["more_train"]) == base_eval  # training sizes moved no eval item
    assert _train(dirs["more_train"]) != base_train
    assert _train(dirs["more_eval"]) == base_train  # eval sizes moved no training row or image
    assert _eval(dirs["more_eval"]) != base_eval
    assert _eval(dirs["seed"]) != base_eval and _train(dirs["seed"]) != base_train  # the seed moves both
