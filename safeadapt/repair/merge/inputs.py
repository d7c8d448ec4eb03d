"""The merge engine's inputs: each model named by a merge config resolved (a path, or relative to the
config's folder), its tensors opened for streaming under canonical names (PEFT adapters refused),
and the checks that models may be merged at all (language-model architecture, shared vocabulary)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.models import is_vlm_config, read_config_dict
from safeadapt.io.names import Layout, detect_layout, text_config, to_canonical
from safeadapt.io.resolve import ModelRef, resolve_model_ref
from safeadapt.io.tensors import TensorSource, open_tensors
from safeadapt.repair.merge.config import MergeConfig


@dataclass
class InputModel:
    label: str  # as written in the config
    ref: ModelRef
    source: TensorSource
    layout: Layout
    config: dict[str, Any] | None
    canon: dict[str, str] = field(default_factory=dict)  # canonical key -> on-disk name

    @property
    def is_vlm(self) -> bool:
        return self.layout != "llm" or is_vlm_config(self.config)

    def where(self) -> str:
        return str(self.ref.file if self.ref.kind in ("gguf", "safetensors_file") else self.ref.path)


def _resolve_model(label: str, cfg_dir: Path | None, allow_pickle: bool) -> ModelRef:
    p = Path(label).expanduser()
    if not p.exists() and cfg_dir is not None and (cfg_dir / label).exists():
        return resolve_model_ref(str(cfg_dir / label), allow_pickle=allow_pickle)
    return resolve_model_ref(label, allow_pickle=allow_pickle)


def open_input(label: str, ref: ModelRef, allow_pickle: bool) -> InputModel:
    """One resolved model opened for streaming: its tensors under canonical names (two on-disk names
    that map to one canonical name are an error naming the file)."""
    src = open_tensors(ref, allow_pickle=allow_pickle)
    names = src.keys()
    layout = detect_layout(names)
    m = InputModel(label, ref, src, layout, read_config_dict(ref) or getattr(src, "config", None))
    for n in names:
        k = to_canonical(n, layout)
        if k in m.canon:
            src.close()
            raise SafeAdaptError(f"tensor names {m.canon[k]} and {n} collide in {m.where()}")
        m.canon[k] = n
    return m


def open_inputs(cfg: MergeConfig, cfg_dir: Path | None, allow_pickle: bool) -> list[InputModel]:
    out: list[InputModel] = []
    try:
        for label in cfg.model_order():
            ref = _resolve_model(label, cfg_dir, allow_pickle)
            if (
                ref.kind != "gguf"
                and (ref.path / "adapter_config.json").is_file()
                and not (ref.path / "config.json").is_file()
            ):
                raise SafeAdaptError(
                    f"{ref.path} is a PEFT adapter, not a full checkpoint; merge it into its base first "
                    "(e.g. `peft` merge_and_unload + save_pretrained)"
                )
            out.append(open_input(label, ref, allow_pickle))
    except BaseException:
        for m in out:
            m.source.close()
        raise
    return out


def _index_of(models: list[InputModel], label: str | None, what: str) -> int | None:
    if label is None:
        return None
    for i, m in enumerate(models):
        if m.label == label:
            return i
    p = Path(label).expanduser()
    if p.exists():  # the same model written differently (trailing slash, relative path)
        for i, m in enumerate(models):
            if p.resolve() in (m.ref.path.resolve(), m.ref.file.resolve()):
                return i
    raise SafeAdaptError(f"{what} {label!r} is not one of the merged models ({', '.join(m.label for m in models)})")


def _check_architectures(models: list[InputModel]) -> None:
    def arch(m: InputModel) -> str | None:
        if m.config is None:
            return None
        tc = text_config(m.config)
        return tc.get("model_type")

    ref = next((m for m in models if arch(m)), None)
    if ref is None:
        return
    for m in models:
        a = arch(m)
        if a is not None and a != arch(ref):
            raise SafeAdaptError(
                f"architecture mismatch: {ref.where()} is {arch(ref)} but {m.where()} is {a} (language model types "
                f"must match)"
            )


def _tokenizer_vocab(m: InputModel) -> dict[int, str] | None:
    d = m.ref.config_dir
    f = d / "tokenizer.json" if d else None
    if f is None or not f.is_file():
        return None
    try:
        tj = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    vocab = (tj.get("model") or {}).get("vocab")
    out: dict[int, str] = {}
    if isinstance(vocab, dict):
        out = {int(i): tok for tok, i in vocab.items()}
    elif isinstance(vocab, list):
        out = {i: (e[0] if isinstance(e, list) else str(e)) for i, e in enumerate(vocab)}
    for a in tj.get("added_tokens") or []:
        out[int(a["id"])] = a["content"]
    return out


def _check_shared_vocab(models: list[InputModel], shared: int) -> None:
    vocabs = [(m, _tokenizer_vocab(m)) for m in models]
    vocabs = [(m, v) for m, v in vocabs if v is not None]
    for m, v in vocabs[1:]:
        m0, v0 = vocabs[0]
        for i in range(shared):
            if v0.get(i) != v.get(i):
                raise SafeAdaptError(
                    f"tokenizers disagree on token id {i} ({v0.get(i)!r} in {m0.where()} vs {v.get(i)!r} in "
                    f"{m.where()}); "
                    "merged embedding rows would mix different tokens"
                )
