"""`build_judge(name, **options)`: a judge by name whose LLM backend is built from plain options, so
`eval --judge-model`, a search's `eval.judge_options` and a study's eval stage all reach LLM judges.

Backend options (the rest go to the judge): `model` (HF dir / hub id / GGUF, or the served model
name), `backend` (auto | hf | vllm | openai; or a ready Backend object), `base_url` and
`api_key_env` (openai), `dtype`, `threads`, `max_batch`, `max_model_len`,
`gpu_memory_utilization` (vllm), `trust_remote_code`, `allow_pickle`; `tokenizer` (a path: the
classifier's tokenizer, for an endpoint's truncation)."""

from __future__ import annotations

from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.eval.types import Judge

#: options that configure the judge's backend rather than the judge
BACKEND_OPTIONS = ("dtype", "threads", "max_batch", "max_model_len", "gpu_memory_utilization", "trust_remote_code",
                   "allow_pickle")


def judge_needs_backend(name: str) -> bool:
    from safeadapt.eval.judges.registry import judge_needs

    return bool(judge_needs(name)["needs_backend"])


def backend_kwargs(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments `make_backend` takes for `kind` from the judge options."""
    if kind == "openai":
        out = {k: options[k] for k in ("base_url", "api_key_env") if options.get(k)}
        if "base_url" not in out:
            raise SafeAdaptError("judge backend openai needs base_url (--judge-endpoint URL)")
        return out
    if options.get("base_url"):
        raise SafeAdaptError(f"base_url (--judge-endpoint) only applies to judge backend openai, not {kind!r}")
    keep: tuple[str, ...] = ("dtype", "max_model_len", "gpu_memory_utilization", "trust_remote_code")
    if kind in ("hf", "auto"):  # auto: make_backend keeps what the chosen backend takes
        keep = BACKEND_OPTIONS
    return {k: options[k] for k in keep if k in options and options[k] is not None}


def build_judge(name: str, **options: Any) -> Judge:
    """Build judge `name`; when `options` has `model`, first build its backend (see module doc)."""
    from safeadapt.eval.judges.registry import get_judge

    opts = dict(options)
    model = opts.pop("model", None)
    kind = opts.get("backend")
    backend_opts = {k: opts.pop(k) for k in (*BACKEND_OPTIONS, "base_url", "api_key_env") if k in opts}
    tokenizer = opts.get("tokenizer")
    if isinstance(kind, str) or (model is not None and kind is None):
        opts.pop("backend", None)
        if model is None:
            raise SafeAdaptError(f"judge {name!r}: a judge backend ({kind}) needs a judge model "
                                 "(--judge-model / judge_options.model)")
        if name != "ensemble" and not judge_needs_backend(name):
            raise SafeAdaptError(f"judge {name!r} runs offline and takes no judge model")
        from safeadapt.eval.backends import make_backend

        kind = kind or "auto"
        opts["backend"] = make_backend(str(model), kind, **backend_kwargs(kind, backend_opts))
    elif backend_opts:
        raise SafeAdaptError(f"judge {name!r}: {', '.join(sorted(backend_opts))} only apply with a judge model")
    if isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        try:
            opts["tokenizer"] = AutoTokenizer.from_pretrained(tokenizer)
        except (OSError, ValueError) as e:  # a missing dir, or a name that is no valid hub id
            raise SafeAdaptError(f"judge tokenizer {tokenizer!r} could not be loaded: {type(e).__name__}") from None
    if name != "ensemble" and judge_needs_backend(name) and opts.get("backend") is None:
        raise SafeAdaptError(f"judge {name!r} needs an LLM: pass --judge-model PATH (with --judge-backend hf|vllm) or "
                             "--judge-endpoint URL --judge-model NAME (judge_options: model, backend, base_url)")
    return get_judge(name, **opts)
