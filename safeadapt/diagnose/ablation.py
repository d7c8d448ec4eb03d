"""Directional ablation (the refusal-direction work's intervention): project a unit direction out of
the residual stream at every decoder block's input and out of every attention and MLP output, with
forward hooks on a loaded transformers model; removed when the context exits."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


def decoder_layers(model: Any) -> Any:
    """The language model's decoder block list (a ModuleList named `...layers`, not the vision tower's)."""
    import torch

    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and name.endswith("layers") and "vision" not in name:
            if best is None or len(mod) > len(best):
                best = mod
    if best is None:
        raise ValueError("no decoder layer list found in the model")
    return best


def _project_out(x: Any, u: Any) -> Any:
    return x - (x @ u).unsqueeze(-1) * u


@contextlib.contextmanager
def ablate_direction(model: Any, direction: Any) -> Iterator[None]:
    """Within the context, every decoder block sees and writes a residual stream with no component
    along `direction` (normalised here; cast to the model's dtype)."""
    import torch

    layers = decoder_layers(model)
    p = next(model.parameters())
    u = (direction.double() / torch.linalg.vector_norm(direction.double())).to(p.dtype).to(p.device)

    def pre(_mod: Any, args: Any, kwargs: Any) -> Any:
        if args:
            return (_project_out(args[0], u), *args[1:]), kwargs
        kwargs = dict(kwargs)
        kwargs["hidden_states"] = _project_out(kwargs["hidden_states"], u)
        return args, kwargs

    def post(_mod: Any, _args: Any, out: Any) -> Any:
        if isinstance(out, tuple):
            return (_project_out(out[0], u), *out[1:])
        return _project_out(out, u)

    handles = []
    try:
        for block in layers:
            handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
            for sub in ("self_attn", "mlp"):
                m = getattr(block, sub, None)
                if m is not None:
                    handles.append(m.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()
