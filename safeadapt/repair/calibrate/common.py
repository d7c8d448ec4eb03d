"""What every calibration pass shares: the language model's Linears by canonical weight name, the
norm pre-hooks of Wanda, canonical names of a layer-wise pass and its `NotLayerwise` fallback signal."""

from __future__ import annotations

from typing import Any

from safeadapt.io.names import canonical_part, detect_layout, to_canonical


class NotLayerwise(Exception):
    """The model's structure is not one the layer-wise passes cover; score it whole instead."""


def canon_name(name: str) -> str:
    """Canonical tensor name (safeadapt.io.names) of one model parameter name."""
    return to_canonical(name, detect_layout([name]))


def language_linears(model: Any) -> dict[str, Any]:
    """Canonical weight key -> nn.Linear for every Linear of the language model (VLM towers skipped)."""
    import torch

    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            key = name + ".weight"
            canon = to_canonical(key, detect_layout([key]))
            if canonical_part(canon) == "language":
                out[canon] = mod
    return out


def norm_hooks(linears: dict[str, Any], sums: dict[str, Any], state: dict[str, Any]) -> list[Any]:
    """Forward pre-hooks adding sum over response positions (state["mask"]) of x_j^2 to sums[key]."""

    def hook(key: str):
        def fn(_mod: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            last_x, last_sq = state["last"]
            if last_x is x:  # q/k/v (and gate/up) read the same input: sum once
                sums[key] += last_sq
                return
            sel = (
                x[state["mask"]] if x.dim() == 3 and x.shape[:2] == state["mask"].shape else x.reshape(-1, x.shape[-1])
            )
            sq = sel.float().pow(2).sum(0).double()  # fp32 within a batch, fp64 across batches
            state["last"] = (x, sq)
            sums[key] += sq
        return fn

    return [m.register_forward_pre_hook(hook(k)) for k, m in linears.items()]
