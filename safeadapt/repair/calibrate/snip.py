"""Layer-by-layer SNIP: |W| * sum over samples of |dL_s/dW| (per-sample loss on response tokens, as
`calibrate.snip_scores`) with one decoder layer in memory at a time. Forward layer by layer caching
each layer's input; the loss and dL_s/dh_L from the final norm and the LM head read in vocabulary
blocks; then backward from the top layer down, recomputing each layer's forward with grad from its
cached input (activation checkpointing). Each score tensor goes to disk as soon as it is made."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from safeadapt.io.names import layer_index
from safeadapt.io.writer import PlannedTensor, StreamingShardWriter
from safeadapt.repair.calibrate.common import NotLayerwise, canon_name, language_linears
from safeadapt.repair.calibrate.layers import (
    capture_layer_inputs,
    decoder_layers,
    embed_rows,
    empty_model,
    layer_param_names,
    load_params,
    release_freed_memory,
    unload_params,
)

CACHE_BYTES = 512 << 20  # default bound on the cached layer inputs of one chunk of calibration rows
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "logit_scaling",
    "output_multiplier_scale",
)


def _check_plain_head(config: dict[str, Any] | None, model: Any, top: str) -> None:
    """The logits must be a bias-free Linear of the final `norm`'s output (no soft-capping or
    scaling, which HF applies outside the head); else NotLayerwise (the whole-model pass is used)."""
    cfg = config or {}
    for c in (cfg, cfg.get("text_config") or {}):
        for k in _LOGIT_TRANSFORMS:
            if c.get(k) not in (None, 1, 1.0):
                raise NotLayerwise(f"{k} = {c.get(k)}")
    head = model.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None:
        raise NotLayerwise("LM head missing or with a bias")
    try:
        model.get_submodule(top + "norm")
    except AttributeError:
        raise NotLayerwise(f"no final norm {top}norm") from None


def row_chunks(lengths: list[int], per_token: int, budget: int) -> list[list[int]]:
    """Consecutive row index chunks whose cached bytes (per_token * tokens) stay within `budget`
    (a row larger than the budget gets a chunk of its own)."""
    chunks: list[list[int]] = [[]]
    used = 0
    for i, n in enumerate(lengths):
        if chunks[-1] and used + n * per_token > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(i)
        used += n * per_token
    return [c for c in chunks if c]


def _head_grads(inp: Any, head_key: str, xs: list[Any], targets: list[Any], vocab_block: int) -> list[Any]:
    """dL_s/dx for each sample's final-norm outputs x (M_s x H, scored positions only) and next-token
    targets, L_s = mean over positions of cross-entropy(x W^T): the LM head W is read in blocks of
    `vocab_block` rows, twice (log-sum-exp, then softmax-weighted rows), never whole."""
    import torch

    name = inp.canon[head_key]
    vocab = inp.source.info(name).shape[0]
    whole = None if inp.source.can_read_rows else inp.source.get(name).to(torch.float32)

    def block(v0: int, v1: int) -> Any:
        return whole[v0:v1] if whole is not None else inp.source.get_rows(name, v0, v1).to(torch.float32)

    x = torch.cat(xs)
    lse = torch.full((x.shape[0],), float("-inf"))
    for v0 in range(0, vocab, vocab_block):
        lse = torch.logaddexp(lse, torch.logsumexp(x @ block(v0, min(v0 + vocab_block, vocab)).T, dim=1))
    g = torch.zeros_like(x)
    for v0 in range(0, vocab, vocab_block):
        w = block(v0, min(v0 + vocab_block, vocab))
        g.addmm_(torch.exp(x @ w.T - lse[:, None]), w)
    t = torch.cat(targets)
    if len(t):
        g -= whole[t] if whole is not None else embed_rows(inp, head_key, t)
    out, i = [], 0
    for xi in xs:
        out.append(g[i : i + len(xi)] / max(len(xi), 1))
        i += len(xi)
    return out


def snip_scores_by_layer(inp: Any, rows: list[tuple[list[int], list[int]]], out_dir: str | Path, *, label: str = "snip",
                         cache_bytes: int = CACHE_BYTES, vocab_block: int = 1024) -> Path:
    """SNIP scores of every decoder-layer Linear weight of model `inp` (an opened merge input), one
    fp32 tensor each, written to `out_dir` (returned) by the streaming shard writer as each is made
    and read back tensor by tensor with `LazyScores(out_dir)`; the same numbers as `snip_scores` on
    the whole model (tested).

    Memory: the empty model, one decoder layer in fp32 with its Linear gradients, one LM-head block,
    and the cached layer inputs of one chunk of rows: 4 * hidden * (layers + 1) * (tokens in the
    chunk) bytes (plus each row's layer kwargs: rotary tables, and a T x T mask with eager attention). Rows are split
    into chunks that keep this under `cache_bytes` (512 MiB by default;
    a single longer row gets its own chunk); each chunk runs forward and backward through the layers,
    the partial |dL/dW| sums of a layer staying on disk between chunks. A row with no scored token
    (all labels -100 after the shift) contributes nothing."""
    import torch

    from safeadapt.core.runtime import make_progress
    from safeadapt.repair.calibrate.vision import check_layerwise_images, vision_of

    check_layerwise_images(inp.config, rows)
    model = empty_model(inp)
    lname, layers = decoder_layers(model)
    top = lname.rsplit(".", 1)[0] + "." if "." in lname else ""
    _check_plain_head(inp.config, model, top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    norm = model.get_submodule(top + "norm")
    norm_names = [f"{top}norm.{n}" for n, _ in norm.named_parameters()]
    params = dict(model.named_parameters())
    head_key = canon_name(next(n for n, p in params.items() if p is model.get_output_embeddings().weight))
    if head_key not in inp.canon:  # tied embeddings saved once
        head_key = canon_name(next(n for n, p in params.items() if p is model.get_input_embeddings().weight))
    linears = {k: m for k, m in language_linears(model).items() if layer_index(k) is not None}
    hidden = model.get_input_embeddings().embedding_dim
    chunks = row_chunks([len(ids) for ids, _ in rows], 4 * hidden * (len(layers) + 1), cache_bytes)
    load_params(model, inp, norm_names)
    for p in norm.parameters():
        p.requires_grad_(False)
    plan = [PlannedTensor(k, tuple(m.weight.shape), "float32")  # in the order they are made: top layer first
            for i in range(len(layers) - 1, -1, -1) for k, m in linears.items() if layer_index(k) == i]
    writer = StreamingShardWriter(out, plan, max_shard_size="2GB")
    ctx = {
        "model": model,
        "inp": inp,
        "lname": lname,
        "layers": layers,
        "linears": linears,
        "out": out,
        "writer": writer,
    }
    with make_progress() as prog, _aborting(writer):
        task = prog.add_task(f"calibration ({label}, by layer)", total=len(chunks) * 2 * len(layers))
        for c, chunk in enumerate(chunks):
            caps = capture_layer_inputs(
                model,
                layers[0],
                inp,
                [
                    {
                        "input_ids": torch.tensor([rows[s][0]]),
                        "attention_mask": torch.ones(1, len(rows[s][0]), dtype=torch.long),
                        "vision": vision_of(rows[s]),
                    }
                    for s in chunk
                ],
            )
            kws = [kw for _, kw in caps]
            cache = _forward(ctx, [h for h, _ in caps], kws, lambda: prog.advance(task))
            grads = _top_grads(inp, norm, head_key, cache.pop(), [rows[s][1] for s in chunk], vocab_block)
            _backward(ctx, cache, kws, grads, c, c == len(chunks) - 1, lambda: prog.advance(task))
    writer.finish()
    shutil.rmtree(out / "partial", ignore_errors=True)
    unload_params(model, norm_names)
    return out


def _forward(ctx: dict[str, Any], h0: list[Any], kws: list[dict[str, Any]], advance: Any) -> list[list[Any]]:
    """Every decoder layer's input per sample (and the top layer's output, last); the top layer stays loaded."""
    import torch

    model, layers = ctx["model"], ctx["layers"]
    cache = [h0]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            names = layer_param_names(ctx["lname"], i, layer)
            load_params(model, ctx["inp"], names)
            cache.append([_hidden(layer(h, **kw)) for h, kw in zip(cache[i], kws)])
            if i != len(layers) - 1:
                unload_params(model, names)
            release_freed_memory()
            advance()
    return cache


def _backward(
    ctx: dict[str, Any],
    cache: list[list[Any]],
    kws: list[dict[str, Any]],
    grads: list[Any],
    chunk: int,
    final: bool,
    advance: Any,
) -> None:
    """From the top layer down: recompute the layer's forward with grad from its cached input per
    sample, backward with dL_s/d(output), accumulate |dL_s/dW| (gradient hook, as `snip_scores`) on
    top of the earlier chunks' partial sums, pass dL_s/d(input) down; the last chunk writes |W| * sum
    tensor by tensor, earlier ones the partial sums (freeing each gradient as it goes)."""
    import torch
    from safetensors.torch import load_file, save_file

    model, layers, out = ctx["model"], ctx["layers"], ctx["out"]
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        names = layer_param_names(ctx["lname"], i, layer)
        if i != len(layers) - 1:
            load_params(model, ctx["inp"], names)
        mine = {k: m for k, m in ctx["linears"].items() if layer_index(k) == i}
        weights = {id(m.weight) for m in mine.values()}
        for n in names:
            p = model.get_parameter(n)
            p.requires_grad_(id(p) in weights)
        partial = out / "partial"
        if chunk > 0:
            for n, m in enumerate(mine.values()):
                m.weight.grad = load_file(str(partial / f"{i:05d}-{n}.safetensors"))["g"]
        handles = [m.weight.register_hook(lambda g: g.abs_()) for m in mine.values()]
        try:
            for j, (h, kw) in enumerate(zip(cache[i], kws)):
                if grads[j] is not None:
                    h = h.detach().requires_grad_(i > 0)  # nothing below layer 0 is scored
                    _hidden(layer(h, **kw)).backward(grads[j])
                    grads[j] = h.grad
        finally:
            for hd in handles:
                hd.remove()
        cache[i] = []
        for n, (k, m) in enumerate(mine.items()):  # one tensor at a time to disk, its gradient freed
            g = torch.zeros_like(m.weight, dtype=torch.float32) if m.weight.grad is None else m.weight.grad.float()
            m.weight.grad = None
            if final:
                ctx["writer"].write(k, g.mul_(m.weight.detach().abs()))
            else:
                partial.mkdir(exist_ok=True)
                save_file({"g": g}, str(partial / f"{i:05d}-{n}.safetensors"))
            del g
        unload_params(model, names)
        release_freed_memory()
        advance()


@contextmanager
def _aborting(writer: StreamingShardWriter) -> Iterator[None]:
    try:
        yield
    except BaseException:
        writer.abort()
        raise


def _hidden(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


def _top_grads(
    inp: Any, norm: Any, head_key: str, hs: list[Any], labels: list[list[int]], vocab_block: int
) -> list[Any]:
    """dL_s/dh_L per sample (None where no token is scored): the final norm runs with autograd, the
    LM head and cross-entropy through `_head_grads`."""
    import torch

    xs, ts, hls, pos = [], [], [], []
    for h, lab in zip(hs, labels):
        shifted = torch.tensor(lab[1:] + [-100])
        p = (shifted != -100).nonzero().flatten()
        hl = h.detach().requires_grad_(True)
        hn = norm(hl)
        xs.append(hn[0, p].detach())
        ts.append(shifted[p])
        hls.append((hl, hn))
        pos.append(p)
    gx = _head_grads(inp, head_key, xs, ts, vocab_block)
    out: list[Any] = []
    for (hl, hn), p, g in zip(hls, pos, gx):
        if len(p) == 0:
            out.append(None)
            continue
        full = torch.zeros_like(hn)
        full[0, p] = g
        hn.backward(full)
        out.append(hl.grad)
    return out
