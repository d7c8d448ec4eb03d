"""The whole-model scoring passes: Wanda input-feature norms ||X_j||_2 from forward pre-hooks (one
pass), SNIP |W| * sum_s |dL_s/dW| from per-sample gradients; keyed by canonical tensor names."""

from __future__ import annotations

from typing import Any

from safeadapt.core.runtime import track
from safeadapt.repair.calibrate.common import language_linears, norm_hooks
from safeadapt.repair.calibrate.rows import batches
from safeadapt.repair.calibrate.vision import vision_of


def wanda_norms(model: Any, rows: list[tuple[list[int], list[int]]], *, batch_size: int = 8, pad_id: int = 0,
                label: str = "wanda") -> dict[str, Any]:
    """||X_j||_2 of every Linear input feature over the response tokens, one hooked forward pass."""
    import torch

    linears = language_linears(model)
    sums = {k: torch.zeros(m.in_features, dtype=torch.float64) for k, m in linears.items()}
    state: dict[str, Any] = {"mask": None, "last": (None, None)}
    handles = norm_hooks(linears, sums, state)
    try:
        with torch.inference_mode():
            for b in track(list(batches(rows, batch_size, pad_id)), f"calibration ({label})"):
                state["mask"], state["last"] = b["scored"], (None, None)
                model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], **b["vision"])
    finally:
        for h in handles:
            h.remove()
        state["last"] = (None, None)
    return {k: v.sqrt().float() for k, v in sums.items()}


def snip_scores(model: Any, rows: list[tuple[list[int], list[int]]], *, label: str = "snip") -> dict[str, Any]:
    """|W| * sum over samples of |dL_s/dW| for every language Linear weight (L_s: the mean response-token
    loss of sample s; one forward+backward per sample). A gradient hook turns each sample's gradient
    into its absolute value in place before autograd accumulates it into `.grad`, so the sum of |g_s|
    costs one elementwise pass per sample and no extra buffer. A row with no scored next-token target
    (a response truncated away) is skipped, as the layer-wise pass does."""
    import torch

    linears = language_linears(model)
    targets = {id(m.weight) for m in linears.values()}
    prev = {n: (p.requires_grad, p.grad) for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in targets)
        p.grad = None
    handles = [m.weight.register_hook(lambda g: g.abs_()) for m in linears.values()]
    try:
        for row in track(rows, f"calibration ({label})"):
            ids, lab = row
            if all(t == -100 for t in lab[1:]):  # no next-token target scored: the mean loss would be NaN
                continue
            x = torch.tensor([ids])
            loss = model(
                input_ids=x, attention_mask=torch.ones_like(x), labels=torch.tensor([lab]), **vision_of(row)
            ).loss
            loss.backward()
        out = {}
        for k, m in linears.items():
            g = m.weight.grad
            out[k] = (
                torch.zeros_like(m.weight, dtype=torch.float32)
                if g is None
                else g.float().mul_(m.weight.detach().abs())
            )
            m.weight.grad = None
    finally:
        for h in handles:
            h.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(prev[n][0])
            p.grad = prev[n][1]
    return out
