"""Run the shared calibration pass in a spawned child process that writes its scores to safetensors
files and exits before the repair streams. The parent never imports transformers' model code or holds
a model (or SNIP's model-sized score buffers): it reads the files back one tensor at a time
(`LazyScores`), so its peak is the streaming merge's, and the calibration's peak (one decoder layer
for layer-wise Wanda and SNIP; the whole model, its gradients and the scores for whole-model SNIP on
GGUF / pickle inputs) is paid by a process that is gone. `compute_scores` is the child's entry point
and may be called in process (tests check both give the same bytes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CalibrationJob:
    """Everything the child needs, picklable: score sets, the scored inputs by role (label and
    resolved ModelRef), calibration settings and rows, where to write, torch threads and seed."""

    needs: list[Any]  # ScoreNeed
    inputs: dict[str, tuple[str, Any]]  # role -> (label, ModelRef)
    texts: dict[str, list[list[dict[str, str]]]]
    max_length: int
    batch_size: int
    out_dir: str
    seed: int = 0
    threads: int | None = None
    allow_pickle: bool = False
    files: dict[str, str] = field(default_factory=dict)


class LazyScores:
    """Scores in a safetensors file or a directory of them (layer-wise SNIP), read one tensor at a
    time with positioned reads (not mmap: mapped score pages would stay in the streaming process's
    resident set); None for a tensor without scores."""

    def __init__(self, path: str | Path) -> None:
        from safeadapt.io.tensors import open_tensors

        self._src = open_tensors(str(path), mode="read")
        self._keys = set(self._src.keys())

    def get(self, key: str) -> Any:
        return self._src.get(key) if key in self._keys else None


def compute_scores(job: CalibrationJob) -> dict[str, str]:
    """Compute every score set of `job` and write each to `out_dir/<name>.safetensors` (layer-wise
    SNIP: the directory `out_dir/<name>/`, safetensors shards); returns name -> path.
    Wanda: one fp32 norm vector per Linear; SNIP: one full-shape fp32 score per Linear. HF dirs /
    safetensors with a config are scored layer by layer (decoder-layer Linears, the repairs' scope);
    GGUF and pickle inputs, and architectures the layer-wise passes do not cover (`NotLayerwise`:
    no `layers` list, no final `norm`, an LM head with a bias, soft-capped or scaled logits), load whole."""
    import torch
    from safetensors.torch import save_file

    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.calibrate.common import NotLayerwise
    from safeadapt.repair.calibrate.layers import streamable, wanda_norms_by_layer
    from safeadapt.repair.calibrate.rows import tokenize
    from safeadapt.repair.calibrate.scores import snip_scores, wanda_norms
    from safeadapt.repair.calibrate.snip import snip_scores_by_layer
    from safeadapt.repair.merge.inputs import open_input
    from safeadapt.train.common import tokenizer_of

    if job.threads is not None:
        torch.set_num_threads(int(job.threads))
    torch.manual_seed(job.seed)
    out = Path(job.out_dir)
    files: dict[str, str] = {}

    def save(name: str, scores: dict[str, Any]) -> None:
        path = out / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in scores.items()}, str(path))
        files[name] = str(path)

    for r in dict.fromkeys(n.role for n in job.needs):
        label, ref = job.inputs[r]
        inp = open_input(label, ref, job.allow_pickle)
        try:
            mine = [n for n in job.needs if n.role == r]
            if streamable(inp):
                tok = processor_of(inp)
                try:
                    for need in mine:  # one decoder layer in memory at a time
                        rows = tokenize(
                            tok, job.texts[need.dataset], job.max_length, f"calibration.{need.dataset}", label
                        )
                        what = f"{need.kind}, {need.dataset}"
                        if need.kind == "wanda":
                            save(
                                need.name,
                                wanda_norms_by_layer(
                                    inp,
                                    rows,
                                    batch_size=job.batch_size,
                                    pad_id=tokenizer_of(tok).pad_token_id or 0,
                                    label=what,
                                ),
                            )
                        else:  # the shard writer's files in out/<name>/, each tensor written as it is made
                            files[need.name] = str(snip_scores_by_layer(inp, rows, out / need.name, label=what))
                    continue
                except NotLayerwise:  # an architecture the layer-wise passes do not cover: the whole model below
                    pass
            model, proc = load_pretrained(inp.ref, dtype="float32", allow_pickle=job.allow_pickle)
            tok = tokenizer_of(proc)
            try:
                for need in mine:
                    rows = tokenize(proc, job.texts[need.dataset], job.max_length, f"calibration.{need.dataset}", label)
                    if need.kind == "wanda":
                        save(
                            need.name,
                            wanda_norms(
                                model,
                                rows,
                                batch_size=job.batch_size,
                                pad_id=tok.pad_token_id or 0,
                                label=f"wanda, {need.dataset}",
                            ),
                        )
                    else:
                        save(need.name, snip_scores(model, rows, label=f"snip, {need.dataset}"))
            finally:
                del model
        finally:
            inp.source.close()
    return files


def processor_of(inp: Any) -> Any:
    """The processor of a VLM input (its tokenizer when it has no image processor files), else the tokenizer."""
    from transformers import AutoTokenizer

    from safeadapt.io.models import is_vlm_config, vlm_processor

    path = inp.ref.config_dir
    return vlm_processor(path, {}) if is_vlm_config(inp.config) else AutoTokenizer.from_pretrained(str(path))


def compute_scores_in_child(job: CalibrationJob) -> dict[str, str]:
    """`compute_scores` in a spawned child process (a fresh interpreter: no state shared with the
    parent, and all its memory returns to the OS when it exits). Errors (SafeAdaptError included)
    are re-raised in the parent."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        return ex.submit(_child_main, job).result()


def _child_main(job: CalibrationJob) -> dict[str, str]:
    from safeadapt.repair.calibrate.layers import mmap_large_blocks

    mmap_large_blocks()  # this process only: layer-sized blocks go back to the OS when freed
    return compute_scores(job)
