"""Generation backends (transformers, vLLM, OpenAI-compatible HTTP) behind one interface
(`safeadapt.eval.types.Backend`), one module each registered in `registry.BACKENDS`;
`make_backend(model, kind, **options)` builds one by name.
Kind "auto" picks vLLM when it is installed and a CUDA GPU is present, transformers otherwise,
and says which on stderr (one line)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.eval.backends.registry import BACKENDS

#: options only the transformers backend understands (dropped when "auto" picks vLLM)
_HF_ONLY = ("threads", "max_batch", "allow_pickle", "min_new_tokens", "model", "processor")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def backend_kinds() -> list[str]:
    """"auto" and every registered backend kind."""
    return ["auto", *BACKENDS.names()]


def select_backend(kind: str = "auto") -> tuple[str, str]:
    """(backend kind, why). "auto" -> "vllm" when `vllm` is importable and CUDA is available,
    else "hf"; any other known kind is returned as requested."""
    if kind not in backend_kinds():
        raise SafeAdaptError(f"unknown backend {kind!r}; known: {', '.join(backend_kinds())}")
    if kind != "auto":
        return kind, "requested"
    has_vllm = importlib.util.find_spec("vllm") is not None
    gpu = _cuda_available()
    if has_vllm and gpu:
        return "vllm", "auto: vllm is installed and a CUDA GPU is present"
    why = "vllm is not installed" if not has_vllm else "no CUDA GPU"
    return "hf", f"auto: {why}"


def _options_for(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options an "auto" choice can pass on: HF-only knobs are dropped for vLLM, and the HF
    backend gets only the keyword arguments its constructor takes."""
    if kind == "vllm":
        return {k: v for k, v in options.items() if k not in _HF_ONLY}
    accepted = set(inspect.signature(BACKENDS.get("hf").__init__).parameters)
    return {k: v for k, v in options.items() if k in accepted}


def make_backend(model: str, kind: str = "hf", **options: Any) -> Any:
    """A backend for `model`: "auto" (see `select_backend`), "hf" (transformers, local dir / GGUF /
    hub id), "vllm" (needs the `vllm` extra), "openai" (`model` is the served model name; pass
    base_url=...) or any kind a plugin registers."""
    chosen, why = select_backend(kind)
    if kind == "auto":
        options = _options_for(chosen, options)
    backend = BACKENDS.get(chosen)(model, **options)
    if kind == "auto":  # after loading, so a bad model path stays a one-line error
        print(f"safeadapt: generation backend: {chosen} ({why})", file=sys.stderr, flush=True)
    return backend
