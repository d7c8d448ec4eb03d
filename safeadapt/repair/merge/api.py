"""Python entry point `merge(config, out_dir, ...)`: validate a mergekit-style recipe, plan from
headers, stream the merge into an atomic temp directory, add config/tokenizer/processor files,
a model card and provenance, and rename into place only when everything succeeded. `write_model`
is that output path, shared with `safeadapt repair` (safeadapt.repair.api)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.atomic import atomic_dir, atomic_write_json, atomic_write_text, check_output_dir
from safeadapt.core.provenance import Timer, hash_path, provenance
from safeadapt.core.runtime import set_seed
from safeadapt.io.resolve import ModelRef
from safeadapt.io.writer import CONFIG_FILES, PROCESSOR_FILES, TOKENIZER_FILES, copy_support_files
from safeadapt.repair.merge.card import render_card
from safeadapt.repair.merge.config import MergeConfig, dump_yaml, load_config
from safeadapt.repair.merge.engine import MergePlan, plan_merge, run_plan
from safeadapt.repair.merge.inputs import open_inputs
from safeadapt.repair.merge.methods import MergeMethod

FINGERPRINT_BYTES = 1 << 20


def _write_config(plan: MergePlan, out: Path) -> None:
    src = plan.models[plan.config_source]
    cfg = dict(src.config or {})  # for GGUF inputs: the config transformers reads from the metadata
    if not cfg:
        return
    dtypes = {t.out_dtype for t in plan.tensors if t.participants}
    if len(dtypes) == 1:
        dt = dtypes.pop()
        key = "torch_dtype" if "torch_dtype" in cfg and "dtype" not in cfg else "dtype"
        cfg[key] = dt
        if isinstance(cfg.get("text_config"), dict) and "dtype" in cfg["text_config"]:
            cfg["text_config"] = {**cfg["text_config"], "dtype": dt}
    if plan.out_vocab is not None:
        if "vision_config" in cfg and isinstance(cfg.get("text_config"), dict):
            cfg["text_config"] = {**cfg["text_config"], "vocab_size": plan.out_vocab}
        else:
            cfg["vocab_size"] = plan.out_vocab
    atomic_write_json(out / "config.json", cfg)


def _gguf_tokenizer(ref: ModelRef, out: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(ref.path), gguf_file=ref.gguf_file).save_pretrained(out)


def _tokenizer_ref(plan: MergePlan, copy_tokenizer_from: str | None, allow_pickle: bool) -> ModelRef:
    """Where tokenizer files come from: `copy_tokenizer_from` (an input or any other model), else the
    tokenizer_source / config source chosen by the plan."""
    if copy_tokenizer_from is None:
        return plan.models[plan.tokenizer_source].ref
    for m in plan.models:
        if m.label == copy_tokenizer_from:
            return m.ref
    from safeadapt.io.resolve import resolve_model_ref

    return resolve_model_ref(copy_tokenizer_from, allow_pickle=allow_pickle)


@dataclass
class OutputSpec:
    """What a caller of `write_model` adds around the streamed tensors: `kind` (merge / repair, for
    the card and provenance), the recipe as YAML and its file name, input roles for the card, and
    `prepare(plan) -> extras_for` run inside the atomic temp dir before streaming (a repair's
    calibration pass), `notes()` after streaming (e.g. which tensors a repair changed), and extra
    provenance fields."""

    kind: str = "merge"
    recipe_yaml: str | None = None
    recipe_file: str = "mergekit_config.yml"
    roles: dict[str, str] | None = None
    prepare: Callable[[MergePlan], Callable[[str], dict[str, Any]] | None] | None = None
    notes: Callable[[], list[str]] | None = None
    provenance: Callable[[], dict[str, Any]] | None = None
    config_json: dict[str, Any] | None = None
    method_name: str | None = None
    reference: str | None = None


def merge(
    config: dict[str, Any] | str | os.PathLike | MergeConfig,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    allow_pickle: bool = False,
    copy_tokenizer_from: str | None = None,
    seed: int | None = None,
    max_shard_size: int | str = "5GB",
    threads: int | None = 1,
) -> Path:
    """Merge the models of a mergekit-style recipe into `out_dir`; returns the output path.

    Raises SafeAdaptError (one line naming the file/tensor) on bad input; an interrupted or failed
    run leaves no output directory behind."""
    cfg, cfg_dir = load_config(config)
    return write_model(
        cfg,
        cfg_dir,
        cfg.method(),
        out_dir,
        overwrite=overwrite,
        allow_pickle=allow_pickle,
        copy_tokenizer_from=copy_tokenizer_from,
        seed=seed,
        max_shard_size=max_shard_size,
        threads=threads,
    )


def write_model(cfg: MergeConfig, cfg_dir: Path | None, method: MergeMethod, out_dir: str | os.PathLike, *,
                overwrite: bool = False, allow_pickle: bool = False, copy_tokenizer_from: str | None = None,
                seed: int | None = None, max_shard_size: int | str = "5GB", threads: int | None = 1,
                spec: OutputSpec | None = None) -> Path:
    """The shared output path of `merge` and `repair`: open the inputs, plan from headers, stream
    `method` tensor by tensor into an atomic temp dir, add config / tokenizer / processor files, the
    recipe, a model card and provenance, and rename into place only when everything succeeded."""
    spec = spec or OutputSpec()
    out = Path(out_dir)
    check_output_dir(out, overwrite=overwrite)
    seed = 0 if seed is None else int(seed)
    set_seed(seed)
    timer = Timer()
    models = open_inputs(cfg, cfg_dir, allow_pickle)
    try:
        with timer.section("plan"):
            plan = plan_merge(cfg, method, models)
            tok_ref = _tokenizer_ref(plan, copy_tokenizer_from, allow_pickle)
        with timer.section("fingerprint"):
            inputs = {m.label: hash_path(m.ref.file if m.ref.kind in ("gguf", "safetensors_file") else m.ref.path,
                                         max_bytes=FINGERPRINT_BYTES) for m in models}
        with atomic_dir(out, overwrite=overwrite) as tmp:
            extras_for = None
            if spec.prepare is not None:
                with timer.section("calibrate"):
                    extras_for = spec.prepare(plan)
            with timer.section(spec.kind):
                run_plan(plan, cfg, method, tmp, seed=seed, max_shard_size=max_shard_size,
                         metadata={f"{spec.kind}_method": spec.method_name or method.name, "tool": "safeadapt"},
                         threads=threads, extras_for=extras_for)
            cs = models[plan.config_source]
            _write_config(plan, tmp)
            copy_support_files(cs.ref.config_dir, tmp, what=CONFIG_FILES[1:])
            tok_dir = tok_ref.config_dir
            copied_tok = [] if tok_ref.kind == "gguf" else copy_support_files(tok_dir, tmp, what=TOKENIZER_FILES)
            if tok_ref.kind == "gguf":
                _gguf_tokenizer(tok_ref, tmp)
            if plan.out_layout != "llm":
                copy_support_files(cs.ref.config_dir, tmp, what=PROCESSOR_FILES)
                if not copied_tok:
                    copy_support_files(cs.ref.config_dir, tmp, what=TOKENIZER_FILES)
            if cfg.chat_template is not None:
                atomic_write_text(tmp / "chat_template.jinja", cfg.chat_template)
                tc = tmp / "tokenizer_config.json"
                if tc.is_file():  # a template inside tokenizer_config.json would take precedence
                    tcd = json.loads(tc.read_text())
                    if tcd.pop("chat_template", None) is not None:
                        atomic_write_json(tc, tcd)
            recipe = spec.recipe_yaml if spec.recipe_yaml is not None else dump_yaml(cfg)
            atomic_write_text(tmp / spec.recipe_file, recipe)
            notes = []
            if plan.vision_source is not None:
                what = "merged" if spec.kind == "merge" else "repaired"
                notes.append(f"Vision tower and projector copied unchanged from `{models[plan.vision_source].label}`; "
                             f"the language tower was {what}.")
            if any(t.shared_rows is not None for t in plan.tensors):
                donors = sorted({models[t.row_donor].label for t in plan.tensors if t.row_donor is not None})
                notes.append(f"Vocabularies differ: shared embedding rows merged, extra rows copied unchanged from "
                             f"{', '.join(donors)}.")
            if spec.notes is not None:
                notes += spec.notes()
            dtypes = sorted({t.out_dtype for t in plan.tensors})
            atomic_write_text(
                tmp / "README.md",
                render_card(
                    recipe_yaml=recipe,
                    method=spec.method_name or method.name,
                    reference=spec.reference or method.reference,
                    inputs=inputs,
                    base_model=cfg.base_model,
                    models=[m.label for m in models],
                    output_kind="image-text-to-text" if plan.out_layout != "llm" else "text-generation",
                    dtype=",".join(dtypes),
                    notes=notes,
                    kind=spec.kind,
                    roles=spec.roles,
                ),
            )
            config_json = spec.config_json if spec.config_json is not None else json.loads(
                json.dumps(cfg.model_dump(exclude_none=True, mode="json")))
            extra = spec.provenance() if spec.provenance is not None else {}
            atomic_write_json(tmp / "safeadapt_provenance.json", provenance(
                config=config_json, inputs=inputs, timings=timer.timings) | {"seed": seed, "kind": spec.kind} | extra)
    finally:
        for m in models:
            m.source.close()
    return out
