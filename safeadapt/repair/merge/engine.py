"""The merge engine: plans every output tensor (names, shapes, dtypes, which inputs take part) from
headers alone (the inputs are opened and checked in inputs.py), then streams tensor by tensor — load each input's
tensor, cast to the compute dtype,
run the registered method, cast to the output dtype, append to the open shard, free — so peak memory
is one tensor per input, never a whole model. VLM x VLM and VLM x LLM merges go through the
canonical (LLM-style) names of safeadapt.io.names; vision tower and projector pass through from
`vision_source` when any input lacks them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.runtime import track
from safeadapt.io.names import Layout, canonical_part, from_canonical, layer_index, text_config
from safeadapt.io.writer import PlannedTensor, StreamingShardWriter
from safeadapt.repair.merge.config import MergeConfig, resolve_params
from safeadapt.repair.merge.inputs import InputModel, _check_architectures, _check_shared_vocab, _index_of
from safeadapt.repair.merge.methods import MergeMethod, PrepareJob, TensorJob

_EMBED = re.compile(r"(^|\.)(embed_tokens|wte|word_embeddings|embed_in)\.weight$")
_HEAD = re.compile(r"(^|\.)(lm_head|embed_out)\.weight$")
_FLOAT = ("float32", "float16", "bfloat16", "float64")
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16", "float": "float32"}


def is_embedding(key: str) -> bool:
    return bool(_EMBED.search(key) or _HEAD.search(key))


def _dtype_name(s: str | None, what: str) -> str | None:
    if s is None:
        return None
    s = _DTYPE_ALIASES.get(s, s)
    if s not in _FLOAT:
        raise SafeAdaptError(f"unknown {what} {s!r}; use one of {', '.join(_FLOAT)}")
    return s


@dataclass
class TensorPlan:
    key: str  # canonical
    out_name: str
    shape: tuple[int, ...]
    out_dtype: str
    participants: list[int]  # indices into models (mergekit order); empty = pass-through
    passthrough_from: int | None = None
    shared_rows: int | None = None  # embeddings: rows merged; the rest copied from `row_donor`
    row_donor: int | None = None
    t: float = 0.0


@dataclass
class MergePlan:
    models: list[InputModel]
    base: int | None
    config_source: int
    tokenizer_source: int
    vision_source: int | None
    out_layout: Layout
    compute_dtype: str | None
    tensors: list[TensorPlan]
    out_vocab: int | None
    num_layers: int


def tensor_seed(seed: int, key: str) -> int:
    """Per-tensor seed derived from the global seed and the (canonical) tensor name."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:7], "little")


def plan_merge(cfg: MergeConfig, method: MergeMethod, models: list[InputModel]) -> MergePlan:
    base = _index_of(models, cfg.base_model, "base_model")
    _check_architectures(models)
    any_vlm = any(m.is_vlm for m in models)
    all_vlm = all(m.is_vlm for m in models)
    vision_source = _index_of(models, cfg.vision_source, "vision_source")
    if vision_source is not None and not models[vision_source].is_vlm:
        raise SafeAdaptError(f"vision_source {models[vision_source].where()} has no vision tower")
    if vision_source is None and any_vlm and not all_vlm:
        if base is not None and models[base].is_vlm:
            vision_source = base
        else:
            vision_source = next(i for i, m in enumerate(models) if m.is_vlm)
    config_source = base if base is not None else 0
    if any_vlm and not models[config_source].is_vlm:
        config_source = (
            vision_source if vision_source is not None else next(i for i, m in enumerate(models) if m.is_vlm)
        )
    out_layout: Layout = models[config_source].layout if any_vlm else "llm"
    if any_vlm and out_layout == "llm":
        out_layout = "vlm_v4"

    # tokenizer / embedding row donor
    tok_label = cfg.tokenizer_source
    row_donor: int | None = None
    if tok_label == "base":
        if base is None:
            raise SafeAdaptError("tokenizer_source: base needs base_model")
        row_donor = base
    elif tok_label == "union":
        row_donor = None  # decided per tensor: the model with the most rows
    elif tok_label is not None:
        row_donor = _index_of(models, tok_label, "tokenizer_source")
    tokenizer_source = row_donor if row_donor is not None else config_source

    # dtypes
    compute = _dtype_name(cfg.dtype, "dtype")
    out_dtype_cfg = _dtype_name(cfg.out_dtype, "out_dtype")

    src_cfg = models[config_source].config or {}
    num_layers = int(text_config(src_cfg).get("num_hidden_layers") or 0)
    if not num_layers:
        idx = [layer_index(k) for k in models[config_source].canon if canonical_part(k) == "language"]
        num_layers = max([i for i in idx if i is not None], default=-1) + 1

    # every language tensor of any model must exist in all models
    def is_lang(k: str) -> bool:  # text-only merges: every tensor belongs to the language model
        return canonical_part(k) == "language" or not any_vlm

    lang_keys = {i: {k for k in m.canon if is_lang(k)} for i, m in enumerate(models)}
    ref_keys = lang_keys[config_source]
    for i, m in enumerate(models):
        extra = lang_keys[i] - ref_keys
        if extra:
            k = sorted(extra)[0]
            raise SafeAdaptError(
                f"tensor {m.canon[k]} of {m.where()} is missing from {models[config_source].where()} (architecture "
                f"mismatch)"
            )
        missing = ref_keys - lang_keys[i]
        if missing:
            k = sorted(missing)[0]
            raise SafeAdaptError(f"tensor {k} is missing from {m.where()} (present in {models[config_source].where()})")

    plans: list[TensorPlan] = []
    out_vocab: int | None = None
    cs = models[config_source]
    for key, disk_name in cs.canon.items():
        part = canonical_part(key)
        out_name = from_canonical(key, out_layout)
        if is_lang(key):
            participants = list(range(len(models)))
        elif vision_source is not None:
            participants = []
        else:  # VLM x VLM: vision tower and projector merged too
            participants = list(range(len(models)))
            for i in participants:
                if key not in models[i].canon:
                    raise SafeAdaptError(f"tensor {disk_name} is missing from {models[i].where()}")
        if not participants:
            src = models[vision_source]  # type: ignore[index]
            if key not in src.canon:
                raise SafeAdaptError(f"tensor {disk_name} is missing from vision_source {src.where()}")
            info = src.source.info(src.canon[key])
            plans.append(TensorPlan(key, out_name, info.shape, info.dtype, [], passthrough_from=vision_source))
            continue
        infos = [models[i].source.info(models[i].canon[key]) for i in participants]
        dtypes = {ti.dtype for ti in infos}
        if any(d not in _FLOAT for d in dtypes):
            if len(dtypes) > 1 or len({ti.shape for ti in infos}) > 1:
                raise SafeAdaptError(
                    f"tensor {key}: non-float tensor differs between inputs ({', '.join(sorted(dtypes))}); cannot merge"
                )
            plans.append(TensorPlan(key, out_name, infos[0].shape, infos[0].dtype, [], passthrough_from=config_source))
            continue
        if len(dtypes) > 1 and compute is None:
            desc = ", ".join(f"{ti.dtype} in {models[i].where()}" for i, ti in zip(participants, infos))
            raise SafeAdaptError(
                f"tensor {key} has different dtypes ({desc}); set `dtype:` in the merge config to cast all inputs"
            )
        shapes = [ti.shape for ti in infos]
        tp = TensorPlan(key, out_name, shapes[0], out_dtype_cfg or compute or infos[0].dtype, participants)
        if len(set(shapes)) > 1:
            if not is_embedding(key) or len({s[1:] for s in shapes}) > 1:
                desc = " vs ".join(f"{list(s)} in {models[i].where()}" for i, s in zip(participants, shapes))
                raise SafeAdaptError(f"shape mismatch for tensor {key}: {desc}")
            most = max(s[0] for s in shapes)
            if row_donor is not None:
                donor = row_donor
            elif tok_label == "union":
                donor = max(participants, key=lambda i: shapes[participants.index(i)][0])
            elif vision_source is not None and shapes[participants.index(vision_source)][0] == most:
                # VLM x LLM: the output is the VLM, whose tokenizer extends the LLM's (e.g. <image>):
                # shared rows are merged, the VLM's extra rows copied (prefix agreement checked below)
                donor = vision_source
            else:
                desc = " vs ".join(f"{s[0]} in {models[i].where()}" for i, s in zip(participants, shapes))
                raise SafeAdaptError(
                    f"tensor {key} has different vocabulary sizes ({desc}); set tokenizer_source: <model>, base or "
                    f"union "
                    "to merge shared rows and copy the extra rows"
                )
            shared = min(s[0] for s in shapes)
            _check_shared_vocab([models[i] for i in participants], shared)
            tp.shape = shapes[participants.index(donor)]
            tp.shared_rows, tp.row_donor = shared, donor
        if is_embedding(key):
            out_vocab = tp.shape[0] if out_vocab is None else max(out_vocab, tp.shape[0])
        # gradient position, as mergekit 0.1.5: layer i of n at i / (n - 1) (1 for a single layer);
        # tensors outside the decoder layers (embeddings, final norm, lm_head) at 0
        li = layer_index(key)
        if li is not None and part == "language":
            tp.t = li / (num_layers - 1) if num_layers > 1 else 1.0
        elif li is not None and part == "vision":
            nv = int((src_cfg.get("vision_config") or {}).get("num_hidden_layers") or 0)
            tp.t = li / (nv - 1) if nv > 1 else 1.0
        plans.append(tp)
    if tok_label == "union":  # the tokenizer of the model whose (largest) vocabulary was kept
        tokenizer_source = next((t.row_donor for t in plans if t.row_donor is not None), tokenizer_source)
    return MergePlan(
        models, base, config_source, tokenizer_source, vision_source, out_layout, compute, plans, out_vocab, num_layers
    )


CHUNK_ELEMS = 1 << 20  # elements per input per row block in chunked streaming
MIN_CHUNKED_ELEMS = 1 << 21  # smaller tensors go through the method whole


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _chunk_rows(tp: TensorPlan) -> int | None:
    """Rows per block when `tp` is large enough to stream in row chunks, else None."""
    if tp.shared_rows is not None or len(tp.shape) < 2 or tp.shape[0] < 2 or _numel(tp.shape) < MIN_CHUNKED_ELEMS:
        return None
    return max(1, CHUNK_ELEMS // _numel(tp.shape[1:]))


def run_plan(plan: MergePlan, cfg: MergeConfig, method: MergeMethod, out_dir: Path, *, seed: int,
             max_shard_size: int | str, metadata: dict[str, str] | None = None, threads: int | None = 1,
             extras_for: Callable[[str], dict[str, Any]] | None = None) -> None:
    """Stream the planned tensors into `out_dir` (an atomic temp dir).

    Tensors of an elementwise method (`method.chunked`) above MIN_CHUNKED_ELEMS are streamed in row
    blocks: positioned reads of each input's rows, the method on the block, the block's bytes
    appended to the shard; a reader thread fetches the next block while this one is computed (reads
    release the GIL). Results are bit-identical to the whole-tensor path; memory is a few blocks.

    `threads`: torch intra-op threads for the arithmetic (restored afterwards; None leaves torch's
    setting). Default 1: the ops are memory-bound elementwise passes over ~1M-element blocks, where
    a second OpenMP thread mostly spin-waits (measured: bf16 linear 10.7 s CPU with 2 threads vs
    4.3 s with 1 on the shared 2-core machine); the reader thread already uses a second core.

    `extras_for(canonical key)`: per-tensor inputs computed outside the method (repair scores, the
    role of each input), handed to the method in `TensorJob.extras`."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    writer = StreamingShardWriter(out_dir, [PlannedTensor(t.out_name, t.shape, t.out_dtype) for t in plan.tensors],
                                  max_shard_size=max_shard_size, metadata=metadata)
    labels = [m.label for m in plan.models]
    compute = getattr(torch, plan.compute_dtype) if plan.compute_dtype is not None else None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge-read")
    prep_state: dict[str, Any] = {}
    prev_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))

    def load_rows(tp: TensorPlan, j: int, r0: int, r1: int) -> Any:
        m = plan.models[tp.participants[j]]
        x = m.source.get_rows(m.canon[tp.key], r0, r1)
        return x.to(compute) if compute is not None else x

    def read_block(tp: TensorPlan, r0: int, r1: int) -> list[Any]:
        return [load_rows(tp, j, r0, r1) for j in range(len(tp.participants))]

    try:
        for tp in track(plan.tensors, f"merging ({method.name})"):
            if tp.passthrough_from is not None:
                src = plan.models[tp.passthrough_from]
                out = src.source.get(src.canon[tp.key]).to(getattr(torch, tp.out_dtype))
                writer.write(tp.out_name, out)
                del out
                continue
            names = (tp.key, tp.out_name)
            gparams, tparams = resolve_params(
                cfg, method, [labels[i] for i in tp.participants], cfg.base_model, names, tp.t
            )
            base_idx = plan.base if plan.base is not None and plan.base in tp.participants else None
            job_base = tp.participants.index(base_idx) if base_idx is not None else None
            tseed = tensor_seed(seed, tp.key)
            out_dt = getattr(torch, tp.out_dtype)

            rows = _chunk_rows(tp)
            if (rows is not None and method.chunked is not None and method.chunked(gparams, tparams)
                    and all(plan.models[i].source.can_read_rows for i in tp.participants)):
                extras: dict[str, Any] | None = {**(extras_for(tp.key) if extras_for else {}), "rows": tp.shape[0]}
                if method.prepare is not None:
                    pj = PrepareJob(tp.key, tp.shape, job_base, gparams, tparams, tp.shape[0], rows,
                                    lambda j, r0, r1, tp=tp: load_rows(tp, j, r0, r1), tseed, prep_state)
                    got = method.prepare(pj)
                    extras = None if got is None else {**got, **extras}
                if extras is not None:
                    ranges = [(r0, min(tp.shape[0], r0 + rows)) for r0 in range(0, tp.shape[0], rows)]

                    def blocks(tp: TensorPlan = tp, ranges: list = ranges, extras: dict = extras) -> Iterator[Any]:
                        fut = pool.submit(read_block, tp, *ranges[0])
                        for ci, (r0, r1) in enumerate(ranges):
                            xs = fut.result()
                            if ci + 1 < len(ranges):
                                fut = pool.submit(read_block, tp, *ranges[ci + 1])
                            merged = method(TensorJob(tp.key, xs, job_base, gparams, tparams, tseed,
                                                      rows=slice(r0, r1), extras=extras))
                            if tuple(merged.shape) != (r1 - r0, *tp.shape[1:]):
                                raise RuntimeError(
                                    f"merge method {method.name} returned shape {tuple(merged.shape)} for rows "
                                    f"{r0}:{r1} of {tp.key}, expected {(r1 - r0, *tp.shape[1:])}"
                                )
                            yield merged.to(out_dt)
                            del xs, merged

                    writer.write_rows(tp.out_name, blocks())
                    continue

            tensors = []
            for i in tp.participants:
                m = plan.models[i]
                x = m.source.get(m.canon[tp.key])
                # mergekit 0.1.5: inputs aligned to `dtype` when set, else kept in their own
                # (common) dtype; methods that need it (linear, slerp) accumulate in fp32 inside
                if compute is not None:
                    x = x.to(compute)
                tensors.append(x)
            full_donor = None
            if tp.shared_rows is not None:
                full_donor = tensors[tp.participants.index(tp.row_donor)]  # type: ignore[arg-type]
                tensors = [x[: tp.shared_rows] for x in tensors]
            job = TensorJob(tp.key, tensors, job_base, gparams, tparams, tseed,
                            extras=extras_for(tp.key) if extras_for else {})
            merged = method(job)
            if full_donor is not None and tp.shape[0] > tp.shared_rows:  # type: ignore[operator]
                merged = torch.cat([merged, full_donor[tp.shared_rows :].to(merged.dtype)], dim=0)
            if tuple(merged.shape) != tp.shape:
                raise RuntimeError(
                    f"merge method {method.name} returned shape {tuple(merged.shape)} for {tp.key}, expected {tp.shape}"
                )
            out = merged.to(out_dt)
            writer.write(tp.out_name, out)
            del tensors, merged, out, full_donor
        writer.finish()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(prev_threads)
        writer.abort()
