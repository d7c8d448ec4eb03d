"""Load a model + tokenizer/processor from any `ModelRef`: a causal LM (AutoModelForCausalLM) or a
LLaVA-style VLM (AutoModelForImageTextToText + AutoProcessor), from an HF dir, a single safetensors
file (config beside it), GGUF (dequantised by transformers), a PEFT adapter dir (merged into its
base) or a hub id. Used by eval and train."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.resolve import ModelRef, resolve_model_ref

_DTYPES = ("float32", "bfloat16", "float16", "auto")


def torch_dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return "auto"
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise SafeAdaptError(f"unknown dtype {name!r}; use one of {', '.join(_DTYPES)}")
    return table[name]


def read_config_dict(mref: ModelRef) -> dict[str, Any] | None:
    """config.json of a resolved model as a dict (None for GGUF / missing)."""
    d = mref.config_dir
    if d is None or mref.kind == "gguf":
        return None
    f = d / "config.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise SafeAdaptError(f"corrupt config.json in {d}: {e.msg} at line {e.lineno}") from None


def is_vlm_config(cfg: dict[str, Any] | None) -> bool:
    """True for LLaVA-style image-text-to-text configs (vision_config + text_config)."""
    return bool(cfg) and "vision_config" in cfg and "text_config" in cfg  # type: ignore[operator]


def _pad_token(tok: Any) -> None:
    t = getattr(tok, "tokenizer", tok)
    if getattr(t, "pad_token", None) is None and getattr(t, "eos_token", None) is not None:
        t.pad_token = t.eos_token


def load_pretrained(
    ref: str | os.PathLike | ModelRef,
    *,
    dtype: str = "float32",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    for_training: bool = False,
) -> tuple[Any, Any]:
    """Return `(model, processor_or_tokenizer)`.

    A VLM (config with vision_config + text_config) comes back as an AutoModelForImageTextToText with
    its AutoProcessor; anything else as AutoModelForCausalLM with its AutoTokenizer. The model is in
    eval mode unless `for_training`. A missing pad token is set to the EOS token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    mref = resolve_model_ref(ref, allow_pickle=allow_pickle)
    td = torch_dtype(dtype)
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    try:
        if mref.kind == "gguf":
            model = AutoModelForCausalLM.from_pretrained(str(mref.path), gguf_file=mref.gguf_file, dtype=td, **common)
            _drop_dequantised_gguf_quantizer(model)
            tok = AutoTokenizer.from_pretrained(str(mref.path), gguf_file=mref.gguf_file, **common)
        elif mref.kind == "safetensors_file":
            model, tok = _load_single_file(mref, td, common)
        elif (mref.path / "adapter_config.json").is_file() and not (mref.path / "config.json").is_file():
            return _load_adapter(mref, dtype=dtype, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                                 for_training=for_training)
        else:
            cfg = read_config_dict(mref)
            if cfg is None:
                raise SafeAdaptError(f"no config.json in {mref.path}; cannot tell which architecture to build")
            kwargs = dict(common, dtype=td)
            if mref.kind == "pickle_dir":
                kwargs["use_safetensors"] = False
            else:
                kwargs["use_safetensors"] = True
            if is_vlm_config(cfg):
                from transformers import AutoModelForImageTextToText

                model = AutoModelForImageTextToText.from_pretrained(str(mref.path), **kwargs)
                tok = vlm_processor(mref.path, common)
            else:
                model = AutoModelForCausalLM.from_pretrained(str(mref.path), **kwargs)
                tok = AutoTokenizer.from_pretrained(str(mref.path), **common)
    except SafeAdaptError:
        raise
    except (OSError, ValueError, KeyError) as e:
        msg = " ".join(str(e).split())[:300]
        raise SafeAdaptError(f"could not load model {mref.ref}: {type(e).__name__}: {msg}") from None
    _pad_token(tok)
    model.train(for_training)
    return model, tok


def _drop_dequantised_gguf_quantizer(model: Any) -> None:
    """A GGUF checkpoint loads dequantised to float but keeps transformers' GGUF quantizer
    attached, which makes `Trainer` refuse to train it and `save_pretrained` refuse to save it.
    The weights are plain float tensors, so detach the quantizer and its config entry."""
    import torch

    q = getattr(model, "hf_quantizer", None)
    if q is None or "gguf" not in str(getattr(q.quantization_config, "quant_method", "")).lower():
        return
    if not all(p.dtype.is_floating_point and p.dtype != torch.uint8 for p in model.parameters()):
        raise SafeAdaptError("this GGUF model is kept quantised; it cannot be fine-tuned (load it dequantised)")
    q.remove_quantization_config(model)  # transformers' own clean-up for dequantised checkpoints
    from transformers import PreTrainedModel

    for m in model.modules():
        if isinstance(m, PreTrainedModel) and getattr(m.config, "_is_quantized", False):
            m.config._is_quantized = False


def _load_adapter(mref: ModelRef, **kw: Any) -> tuple[Any, Any]:
    """A PEFT adapter dir: load `base_model_name_or_path`, apply the adapter, merge it into the
    weights (plain transformers model out); tokenizer from the adapter dir when it has one."""
    from peft import PeftModel

    try:
        base_ref = json.loads((mref.path / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SafeAdaptError(f"{mref.path / 'adapter_config.json'} names no base_model_name_or_path") from None
    if not base_ref:
        raise SafeAdaptError(f"{mref.path / 'adapter_config.json'} names no base_model_name_or_path")
    model, tok = load_pretrained(base_ref, **kw)
    model = PeftModel.from_pretrained(model, str(mref.path)).merge_and_unload()
    if any((mref.path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(mref.path), trust_remote_code=kw.get("trust_remote_code", False))
        _pad_token(tok)
    model.train(kw.get("for_training", False))
    return model, tok


def vlm_processor(path: Path, common: dict[str, Any]) -> Any:
    """AutoProcessor for a VLM dir; a dir with only tokenizer files gets its tokenizer."""
    from transformers import AutoProcessor, AutoTokenizer

    has_proc = any((path / f).is_file() for f in ("processor_config.json", "preprocessor_config.json"))
    if has_proc:
        return AutoProcessor.from_pretrained(str(path), **common)
    return AutoTokenizer.from_pretrained(str(path), **common)


def _load_single_file(mref: ModelRef, td: Any, common: dict[str, Any]) -> tuple[Any, Any]:
    """A bare .safetensors file: config + tokenizer must sit beside it."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    d = mref.path.parent
    if not (d / "config.json").is_file():
        raise SafeAdaptError(f"{mref.path} has no config.json beside it; cannot tell which architecture to build")
    config = AutoConfig.from_pretrained(str(d), **common)
    cfg = read_config_dict(mref)
    if is_vlm_config(cfg):
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_config(config, dtype=td if td != "auto" else None, **common)
        tok = vlm_processor(d, common)
    else:
        model = AutoModelForCausalLM.from_config(config, dtype=td if td != "auto" else None, **common)
        tok = AutoTokenizer.from_pretrained(str(d), **common)
    from safeadapt.io.names import to_runtime_names

    sd = to_runtime_names(load_file(str(mref.path)), cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [m for m in missing if m not in tied and not m.endswith("lm_head.weight")]
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise SafeAdaptError(f"{mref.path} does not match config.json beside it ({what})")
    if "lm_head.weight" not in sd and getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    return model, tok
