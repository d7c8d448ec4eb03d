"""Safety-critical weights by set difference (Wei et al. 2024, arXiv 2402.05162): importance by SNIP
(|W| * sum over samples of |dL/dW|, response tokens) or Wanda (|W| * ||X_j||_2) on safety data and on
utility data, from the shared calibration pass; per matrix the top-q fraction by safety score minus
the top-p fraction by utility score. `action: prune` zeroes them (the paper's diagnostic attack);
`action: graft` copies exactly those entries from the aligned model into the adapted one."""

from __future__ import annotations

from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.methods.base import TensorJob
from safeadapt.repair.methods.base import ScoreNeed, fraction, repair_method, report, role


def _check(p: dict[str, Any]) -> None:
    fraction("p", p["p"])
    fraction("q", p["q"])
    if p["score"] not in ("snip", "wanda"):
        raise SafeAdaptError(f"set_difference: unknown score {p['score']!r}; use snip or wanda")
    if p["action"] not in ("prune", "graft"):
        raise SafeAdaptError(f"set_difference: unknown action {p['action']!r}; use prune or graft")
    if p["score_model"] not in ("aligned", "adapted"):
        raise SafeAdaptError(f"set_difference: score_model must be aligned or adapted, got {p['score_model']!r}")


def _scores(p: dict[str, Any]) -> list[ScoreNeed]:
    return [ScoreNeed("safety", p["score"], "safety", p["score_model"]),
            ScoreNeed("utility", p["score"], "utility", p["score_model"])]


def top_mask(score: Any, frac: float) -> Any:
    """Boolean mask of the top int(frac * numel) entries of the whole matrix."""
    import torch

    flat = score.reshape(-1)
    k = int(flat.numel() * frac)
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.reshape(score.shape)


def _importance(job: TensorJob, which: str) -> Any:
    s = job.extras.get(which)
    if s is None:
        raise SafeAdaptError(
            f"set_difference: no {which} calibration scores reached {job.name} (is it a Linear layer?)"
        )
    if job.params["score"] == "wanda":
        w = role(job, job.params["score_model"]).float()
        return w.abs() * s.float()[None, :]
    return s.float()[: role(job, "adapted").shape[0]]


def safety_critical(job: TensorJob) -> Any:
    """The set difference mask for this tensor."""
    return top_mask(_importance(job, "safety"), float(job.params["q"])) & ~top_mask(
        _importance(job, "utility"), float(job.params["p"])
    )


@repair_method(
    "set_difference",
    params={"score": "snip", "p": 0.1, "q": 0.1, "action": "graft", "score_model": "aligned"},
    needs=("aligned",),
    reference="https://arxiv.org/abs/2402.05162",
    check=_check,
    scores=_scores,
)
def set_difference(job: TensorJob) -> Any:
    w = role(job, "adapted")
    mask = safety_critical(job)
    report(job, selected=int(mask.sum()), numel=w.numel())
    if job.params["action"] == "prune":
        return w.masked_fill(mask, 0)
    return torch_where(mask, role(job, "aligned"), w)


def torch_where(mask: Any, a: Any, b: Any) -> Any:
    import torch

    return torch.where(mask, a.to(b.dtype), b)
