"""Python entry point `repair(recipe, out_dir, ...)`: validate a repair recipe, run the shared
calibration pass the method needs (scores keyed by canonical tensor name), then stream the repaired
model tensor by tensor through the merge engine's writer (safeadapt.repair.merge.api.write_model):
same atomic sharded output, config/tokenizer/processor files, model card and provenance."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.api import OutputSpec, write_model
from safeadapt.repair.merge.config import MergeConfig, ModelEntry
from safeadapt.repair.merge.engine import MergePlan
from safeadapt.repair.merge.methods import MergeMethod, PrepareJob, TensorJob
from safeadapt.repair.methods.base import in_scope
from safeadapt.repair.recipe import ROLES, RepairRecipe, load_recipe


class _LazyScores:
    """Full-shape scores (SNIP) kept in a temp safetensors file and read one tensor at a time."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self._f = safe_open(str(path), framework="pt")
        self._keys = set(self._f.keys())

    def get(self, key: str) -> Any:
        return self._f.get_tensor(key) if key in self._keys else None


def _role_labels(rec: RepairRecipe) -> dict[str, str]:
    """role -> model label; somf's further task vectors as `others:0`, `others:1`..."""
    method = rec.method()
    used = ("adapted", *method.needs, *method.optional)
    out = {r: getattr(rec, r) for r in ROLES if r in used and getattr(rec, r) is not None}
    if "others" in used:
        out.update({f"others:{i}": m for i, m in enumerate(rec.others or [])})
    return out


def _scalar_params(rec: RepairRecipe) -> dict[str, Any]:
    m = rec.method()
    return {**m.params, **{k: v for k, v in rec.parameters.items() if isinstance(v, (bool, int, float, str))}}


def repair(recipe: dict[str, Any] | str | os.PathLike | RepairRecipe, out_dir: str | os.PathLike, *, seed: int | None = None,
           overwrite: bool = False, allow_pickle: bool = False, max_shard_size: int | str = "5GB",
           threads: int | None = 1) -> Path:
    """Repair `adapted` as the recipe says and write the model to `out_dir`; returns the path.

    Bad input raises SafeAdaptError (one line); a failed run leaves no output directory."""
    rec, rdir, label = load_recipe(recipe)
    method = rec.method()
    seed = 0 if seed is None else int(seed)
    roles = _role_labels(rec)
    uniq = list(dict.fromkeys(roles.values()))
    cfg = MergeConfig(merge_method=f"repair:{method.name}", base_model=rec.adapted, models=[ModelEntry(model=m) for m in uniq],
                      parameters=dict(rec.parameters) or None, dtype=rec.dtype, out_dtype=rec.out_dtype, tokenizer_source="base",
                      name=rec.name)
    filters = rec.filters
    texts = _calibration_texts(rec, seed)  # read and checked before any model is loaded or output created
    report: dict[str, dict[str, Any]] = {}

    def touched(key: str, shape: tuple[int, ...]) -> bool:
        return in_scope(key, shape, method.scope) and (method.own_filters or not filters or any(f in key for f in filters))

    def fn(job: TensorJob) -> Any:
        if not touched(job.name, tuple(job.tensors[0].shape)):
            return job.tensors[job.extras["roles"]["adapted"]]
        return method.fn(job)

    def row_blocks(pj: PrepareJob) -> dict[str, Any] | None:
        """Large tensors stream in row blocks when untouched (copied) or when the method is row-wise
        for these parameters; else None sends them through the whole-tensor path."""
        if not touched(pj.name, pj.shape) or (method.chunked is not None and method.chunked(pj.params)):
            return {}
        return None

    mm = MergeMethod(f"repair:{method.name}", fn, params=dict(method.params), reference=method.reference,
                     chunked=lambda _gp, _tps: True, prepare=row_blocks)
    tmpdir = tempfile.TemporaryDirectory(prefix=".safeadapt-scores-", dir=Path(out_dir).absolute().parent
                                         if Path(out_dir).absolute().parent.is_dir() else None)

    def prepare(plan: MergePlan) -> Any:
        found = {r: next(i for i, m in enumerate(plan.models) if m.label == lab) for r, lab in roles.items()}
        idx: dict[str, Any] = {r: i for r, i in found.items() if not r.startswith("others:")}
        idx["others"] = [i for r, i in found.items() if r.startswith("others:")]
        if plan.config_source != idx["adapted"]:
            raise SafeAdaptError(f"{plan.models[plan.config_source].where()} is a VLM but the adapted model "
                                 f"{plan.models[idx['adapted']].where()} is not; give the references' language models")
        stores = _calibrate(rec, plan, idx, seed, texts, Path(tmpdir.name))
        return lambda key: {"roles": idx, "report": report, **{n: s.get(key) for n, s in stores.items()}}

    def notes() -> list[str]:
        return _summary(method.name, report, filters)

    recipe_yaml = yaml.safe_dump(rec.model_dump(exclude_none=True, mode="json"), sort_keys=False)
    spec = OutputSpec(kind="repair", recipe_yaml=recipe_yaml, recipe_file="repair_config.yml",
                      roles={lab: r.split(":")[0] for r, lab in reversed(list(roles.items()))}, prepare=prepare, notes=notes,
                      provenance=lambda: {"repair_report": report}, config_json=rec.model_dump(exclude_none=True, mode="json"),
                      method_name=method.name, reference=method.reference)
    try:
        return write_model(cfg, rdir, mm, out_dir, overwrite=overwrite, allow_pickle=allow_pickle, seed=seed,
                           max_shard_size=max_shard_size, threads=threads, spec=spec)
    finally:
        tmpdir.cleanup()


def _calibration_texts(rec: RepairRecipe, seed: int) -> dict[str, list[list[dict[str, str]]]]:
    from safeadapt.repair.calibrate import calibration_rows

    out = {}
    for need in rec.method().scores(_scalar_params(rec)):
        if need.dataset not in out:
            assert rec.calibration is not None
            out[need.dataset] = calibration_rows(getattr(rec.calibration, need.dataset), rec.calibration.n, seed,
                                                 f"calibration.{need.dataset}")
    return out


def _calibrate(rec: RepairRecipe, plan: MergePlan, idx: dict[str, int], seed: int,
               texts: dict[str, list[list[dict[str, str]]]], tmp: Path) -> dict[str, Any]:
    """Run each score set the method needs (one model load per role) -> name -> store with .get(key)."""
    method = rec.method()
    params = _scalar_params(rec)
    needs = method.scores(params)
    stores: dict[str, Any] = {}
    if method.train is not None:
        stores.update(method.train(rec=rec, plan=plan, roles=idx, seed=seed, params=params, tmp=tmp, texts=texts))
    if not needs:
        return stores
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.calibrate import snip_scores, tokenize, wanda_norms
    from safeadapt.repair.calibrate_layers import streamable, wanda_norms_by_layer
    from safeadapt.train.common import tokenizer_of

    cal = rec.calibration
    assert cal is not None
    for r in dict.fromkeys(n.role for n in needs):
        inp = plan.models[idx[r]]
        mine = [n for n in needs if n.role == r]
        if all(n.kind == "wanda" for n in mine) and streamable(inp):
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(inp.ref.config_dir))
            for need in mine:  # one decoder layer in memory at a time
                rows = tokenize(tok, texts[need.dataset], cal.max_length, f"calibration.{need.dataset}")
                stores[need.name] = wanda_norms_by_layer(inp, rows, batch_size=cal.batch_size, pad_id=tok.pad_token_id or 0,
                                                         label=f"wanda, {need.dataset}")
            continue
        model, proc = load_pretrained(inp.ref, dtype="float32")
        tok = tokenizer_of(proc)
        try:
            for need in mine:
                rows = tokenize(tok, texts[need.dataset], cal.max_length, f"calibration.{need.dataset}")
                if need.kind == "wanda":
                    stores[need.name] = wanda_norms(model, rows, batch_size=cal.batch_size, pad_id=tok.pad_token_id or 0,
                                                    label=f"wanda, {need.dataset}")
                else:
                    from safetensors.torch import save_file

                    scores = snip_scores(model, rows, label=f"snip, {need.dataset}")
                    path = tmp / f"{need.name}.safetensors"
                    save_file(scores, str(path))
                    del scores
                    stores[need.name] = _LazyScores(path)
        finally:
            del model
    return stores


def _summary(name: str, report: dict[str, dict[str, Any]], filters: list[str] | None) -> list[str]:
    notes = [f"Repair method `{name}`" + (f", restricted to tensors matching {', '.join(filters)}." if filters else ".")]
    if not report:
        return notes
    vals = list(report.values())
    for field, verb in (("zeroed", "zeroed"), ("selected", "selected (safety-critical)")):
        if field in vals[0]:
            tot, num = sum(v[field] for v in vals), sum(v["numel"] for v in vals)
            notes.append(f"{tot} of {num} entries ({100 * tot / max(num, 1):.2f}%) {verb} in {len(vals)} tensors.")
    if "kept" in vals[0]:
        kept = [f for v in vals for f in v["kept"]]
        notes.append(f"SOMF masks on {len(vals)} tensors keep {100 * sum(kept) / len(kept):.1f}% of task-vector entries on "
                     f"average (min {100 * min(kept):.1f}%, max {100 * max(kept):.1f}%).")
    if "mixed" in vals[0]:
        mixed = [k for k, v in report.items() if v["mixed"]]
        notes.append(f"{len(mixed)} of {len(vals)} weight matrices mixed with the safety model (projection cosine below "
                     f"the threshold): {', '.join(mixed) if mixed else 'none'}.")
    return notes
