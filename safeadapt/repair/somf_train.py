"""Training pass of SOMF: mask logits as torch parametrizations on the adapted model's Linear weights
(weight = aligned + fuse(M * tau / mean M), M a relaxed Bernoulli sample in train mode, the binary mask
in eval mode), everything else frozen, trained with TRL's DPOTrainer against the unmasked adapted
model as reference. Returns the binary masks keyed by canonical tensor name for the streaming pass."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.engine import tensor_seed
from safeadapt.repair.methods.base import in_scope
from safeadapt.repair.somf_fuse import constant_keeps, fuse_masked


def _module():
    import torch

    class SomfWeight(torch.nn.Module):
        """Parametrization: ignores the stored weight; returns aligned + fused masked task vectors."""

        def __init__(
            self, aligned: Any, taus: list[Any], keeps: list[Any] | None, weight: float, temperature: float
        ) -> None:
            super().__init__()
            self.register_buffer("aligned", aligned)
            self.taus = [t for t in taus]
            for i, t in enumerate(taus):
                self.register_buffer(f"tau{i}", t)
            self.keeps, self.weight, self.temperature = keeps, weight, temperature
            self.logits = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros_like(t)) for t in taus])

        def masks(self) -> list[Any]:
            if self.training:
                temp = torch.tensor(self.temperature)
                return [torch.distributions.RelaxedBernoulli(temp, logits=lg).rsample() for lg in self.logits]
            return [(torch.sigmoid(lg) > 0.5).to(lg.dtype) for lg in self.logits]

        def forward(self, _original: Any) -> Any:
            taus = [getattr(self, f"tau{i}") for i in range(len(self.logits))]
            return self.aligned + fuse_masked(taus, self.masks(), self.keeps, self.weight)

    return SomfWeight


def attach_masks(model: Any, plan: Any, roles: dict[str, Any], params: dict[str, Any], seed: int,
                 filters: list[str] | None) -> dict[str, Any]:
    """Freeze `model` (the adapted one) and parametrize its in-scope Linear weights; returns
    canonical key -> parametrization module (whose `logits` are the only trainable tensors)."""
    import torch
    from torch.nn.utils import parametrize

    from safeadapt.repair.calibrate import language_linears

    SomfWeight = _module()
    for p in model.parameters():
        p.requires_grad_(False)
    al = plan.models[roles["aligned"]]
    others = [plan.models[i] for i in roles.get("others", [])]
    mods: dict[str, Any] = {}
    for key, lin in language_linears(model).items():
        if not in_scope(key, tuple(lin.weight.shape), "layer_matrices") or (
            filters and not any(f in key for f in filters)
        ):
            continue
        w = lin.weight.detach()
        aligned = al.source.get(al.canon[key]).to(torch.float32)
        if aligned.shape != w.shape:
            raise SafeAdaptError(
                f"somf: {key} has shape {tuple(w.shape)} in the adapted model but {tuple(aligned.shape)} in the "
                f"aligned one"
            )
        taus = [w.float() - aligned] + [o.source.get(o.canon[key]).to(torch.float32) - aligned for o in others]
        keeps = constant_keeps(taus, params["fusion"], float(params["density"]), tensor_seed(seed, key))
        mod = SomfWeight(aligned, taus, keeps, float(params["weight"]), float(params["temperature"]))
        parametrize.register_parametrization(lin, "weight", mod)
        mods[key] = mod
    if not mods:
        raise SafeAdaptError(f"somf: no weight matrix matches the filters {filters}")
    return mods


def train_somf(*, rec: Any, plan: Any, roles: dict[str, Any], seed: int, params: dict[str, Any], tmp: Path,
               texts: Any = None) -> dict[str, Any]:
    """Train the mask logits with TRL's DPO loss; returns {"somf_masks": store with .get(key) -> [bool masks]}."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from safeadapt.core.runtime import set_seed
    from safeadapt.data.readers import read_file_rows
    from safeadapt.io.models import load_pretrained
    from safeadapt.train.common import TrainOptions, config_kwargs
    from safeadapt.train.dpo import pairs_for_trl

    pairs_path = Path(rec.calibration.pairs).expanduser()
    raw = [r.data for r in read_file_rows(pairs_path)]
    set_seed(seed)
    model, proc = load_pretrained(plan.models[roles["adapted"]].ref, dtype="float32", for_training=True)
    # image pairs on a VLM go through its processor (as `train dpo`); images on a text-only model: error
    pairs, processing_class, has_images = pairs_for_trl(raw, proc, base_dir=pairs_path.parent, source=str(pairs_path))
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    mods = attach_masks(model, plan, roles, params, seed, rec.filters)
    opts = TrainOptions(lr=float(params["lr"]), max_steps=int(params["steps"]), batch_size=int(params["batch_size"]),
                        max_length=int(params["max_length"]), seed=seed, warmup_ratio=0.0, scheduler="constant")
    with tempfile.TemporaryDirectory(prefix="safeadapt-somf-") as work:
        kw = config_kwargs(opts, Path(work))
        kw.update(beta=float(params["beta"]), loss_type=["sigmoid"], max_length=opts.max_length, dataset_num_proc=None,
                  remove_unused_columns=not has_images)
        trainer = DPOTrainer(model=model, ref_model=ref, args=DPOConfig(**kw), train_dataset=Dataset.from_list(pairs),
                             processing_class=processing_class)
        trainer.train()
    masks = {
        f"{k}::{i}": (lg.detach() > 0).to(__import__("torch").uint8)
        for k, m in mods.items()
        for i, lg in enumerate(m.logits)
    }
    from safetensors.torch import save_file

    path = tmp / "somf_masks.safetensors"
    save_file(masks, str(path))
    n_tasks = 1 + len(roles.get("others", []))
    del model, ref, trainer, mods, masks
    return {"somf_masks": _MaskStore(path, n_tasks)}


class _MaskStore:
    def __init__(self, path: Path, n: int) -> None:
        from safetensors import safe_open

        self._f, self.n = safe_open(str(path), framework="pt"), n
        self._keys = set(self._f.keys())

    def get(self, key: str) -> list[Any] | None:
        if f"{key}::0" not in self._keys:
            return None
        return [self._f.get_tensor(f"{key}::{i}").bool() for i in range(self.n)]
