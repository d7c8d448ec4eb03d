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


def repair(
    recipe: dict[str, Any] | str | os.PathLike | RepairRecipe,
    out_dir: str | os.PathLike,
    *,
    seed: int | None = None,
    overwrite: bool = False,
    allow_pickle: bool = False,
    max_shard_size: int | str = "5GB",
    threads: int | None = 1,
) -> Path:
    """Repair `adapted` as the recipe says and write the model to `out_dir`; returns the path.

    Bad input raises SafeAdaptError (one line); a failed run leaves no output directory."""
    rec, rdir, label = load_recipe(recipe)
    method = rec.method()
    seed = 0 if seed is None else int(seed)
    roles = _role_labels(rec)
    uniq = list(dict.fromkeys(roles.values()))
    cfg = MergeConfig(
        merge_method=f"repair:{method.name}",
        base_model=rec.adapted,
        models=[ModelEntry(model=m) for m in uniq],
        parameters=dict(rec.parameters) or None,
        dtype=rec.dtype,
        out_dtype=rec.out_dtype,
        tokenizer_source="base",
        name=rec.name,
    )
    filters = rec.filters
    texts = _calibration_texts(rec, seed)  # read and checked before any model is loaded or output created
    report: dict[str, dict[str, Any]] = {}

    def touched(key: str, shape: tuple[int, ...]) -> bool:
        return in_scope(key, shape, method.scope) and (
            method.own_filters or not filters or any(f in key for f in filters)
        )

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
        stores = _calibrate(rec, plan, idx, seed, texts, Path(tmpdir.name), allow_pickle)
        scored = {t.key for t in plan.tensors if touched(t.key, t.shape)}  # scores are read for these only
        return lambda key: {
            "roles": idx,
            "report": report,
            **{n: s.get(key) if key in scored else None for n, s in stores.items()},
        }

    def notes() -> list[str]:
        return _summary(method.name, report, filters)

    recipe_yaml = yaml.safe_dump(rec.model_dump(exclude_none=True, mode="json"), sort_keys=False)
    spec = OutputSpec(
        kind="repair",
        recipe_yaml=recipe_yaml,
        recipe_file="repair_config.yml",
        roles={lab: r.split(":")[0] for r, lab in reversed(list(roles.items()))},
        prepare=prepare,
        notes=notes,
        provenance=lambda: {"repair_report": report},
        config_json=rec.model_dump(exclude_none=True, mode="json"),
        method_name=method.name,
        reference=method.reference,
    )
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


#: scored checkpoints up to this size are calibrated in the repairing process: a spawned child costs a
#: fresh interpreter (~4-5 s of imports) and only pays off when the model's memory matters
IN_PROCESS_MAX_BYTES = 256 << 20


def in_process(scored_bytes: int) -> bool:
    """Whether the calibration pass runs in this process: SAFEADAPT_CALIBRATE_IN_PROCESS=1 (always) /
    0 (never, always a child); unset, when the scored checkpoints total at most IN_PROCESS_MAX_BYTES."""
    env = os.environ.get("SAFEADAPT_CALIBRATE_IN_PROCESS", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return scored_bytes <= IN_PROCESS_MAX_BYTES


def _calibrate(rec: RepairRecipe, plan: MergePlan, idx: dict[str, int], seed: int,
               texts: dict[str, list[list[dict[str, str]]]], tmp: Path, allow_pickle: bool = False) -> dict[str, Any]:
    """Run each score set the method needs (one model load per role) -> name -> store with .get(key)."""
    method = rec.method()
    params = _scalar_params(rec)
    needs = method.scores(params)
    stores: dict[str, Any] = {}
    if method.train is not None:
        stores.update(method.train(rec=rec, plan=plan, roles=idx, seed=seed, params=params, tmp=tmp, texts=texts))
    if not needs:
        return stores
    import torch

    from safeadapt.repair.calibrate import CalibrationJob, LazyScores, compute_scores, compute_scores_in_child

    cal = rec.calibration
    assert cal is not None
    job = CalibrationJob(
        needs=list(needs),
        inputs={r: (plan.models[idx[r]].label, plan.models[idx[r]].ref) for r in {n.role for n in needs}},
        texts=texts,
        max_length=cal.max_length,
        batch_size=cal.batch_size,
        out_dir=str(tmp),
        seed=seed,
        threads=torch.get_num_threads(),
        allow_pickle=allow_pickle,
    )
    # a spawned child computes the scores and exits: the model, transformers' model code and SNIP's
    # buffers never live in this (streaming) process. Small models are scored here (`in_process`)
    scored = sum(plan.models[idx[r]].source.total_bytes() for r in job.inputs)
    run = compute_scores if in_process(scored) else compute_scores_in_child
    for name, path in run(job).items():
        stores[name] = LazyScores(path)
    return stores


def _summary(name: str, report: dict[str, dict[str, Any]], filters: list[str] | None) -> list[str]:
    notes = [
        f"Repair method `{name}`" + (f", restricted to tensors matching {', '.join(filters)}." if filters else ".")
    ]
    if not report:
        return notes
    vals = list(report.values())
    for field, verb in (("zeroed", "zeroed"), ("selected", "selected (safety-critical)")):
        if field in vals[0]:
            tot, num = sum(v[field] for v in vals), sum(v["numel"] for v in vals)
            notes.append(f"{tot} of {num} entries ({100 * tot / max(num, 1):.2f}%) {verb} in {len(vals)} tensors.")
    if "kept" in vals[0]:
        kept = [f for v in vals for f in v["kept"]]
        notes.append(
            f"SOMF masks on {len(vals)} tensors keep {100 * sum(kept) / len(kept):.1f}% of task-vector entries on "
            f"average (min {100 * min(kept):.1f}%, max {100 * max(kept):.1f}%)."
        )
    if "mixed" in vals[0]:
        mixed = [k for k, v in report.items() if v["mixed"]]
        notes.append(
            f"{len(mixed)} of {len(vals)} weight matrices mixed with the safety model (projection cosine below "
            f"the threshold): {', '.join(mixed) if mixed else 'none'}."
        )
    return notes
