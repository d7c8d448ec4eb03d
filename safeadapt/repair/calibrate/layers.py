"""Layer-by-layer Wanda pass (the Wanda / SparseGPT big-model scheme): the model is built with empty
(meta) parameters, the inputs of the first decoder layer are captured once per batch, then each
decoder layer in turn is read tensor by tensor from the checkpoint, run on the cached hidden states with the norm
hooks, and dropped. The
embeddings of the calibration tokens are read row by row (`inputs_embeds`), so peak memory is one
decoder layer + the calibration activations, never the model. Scores cover the decoder-layer
Linears (the repairs' scope); the same numbers as the whole-model pass (tested). The empty-model,
parameter loading and first-layer capture helpers are shared with layer-wise SNIP (snip.py)."""

from __future__ import annotations

from typing import Any

from safeadapt.io.names import canonical_part, layer_index
from safeadapt.repair.calibrate.common import NotLayerwise, canon_name, language_linears, norm_hooks
from safeadapt.repair.calibrate.rows import batches


class _Stop(Exception):
    pass





def streamable(inp: Any) -> bool:
    """Only plain HF directories / safetensors with a config take this path (GGUF: whole model)."""
    cd = inp.ref.config_dir
    return inp.ref.kind in ("hf_dir", "safetensors_file") and cd is not None and (cd / "config.json").is_file()


def empty_model(inp: Any) -> Any:
    """The input's HF model class built on the meta device (fp32, buffers real), in eval mode."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from safeadapt.io.models import is_vlm_config

    cfg = AutoConfig.from_pretrained(str(inp.ref.config_dir))
    with init_empty_weights(include_buffers=False):
        if is_vlm_config(inp.config):
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_config(cfg, dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    return model.eval()


def load_params(model: Any, inp: Any, names: list[str]) -> None:
    """Read parameters `names` from the checkpoint into the empty model, as fp32 on the CPU."""
    import torch
    from accelerate.utils import set_module_tensor_to_device

    for n in names:
        key = canon_name(n)
        value = inp.source.get(inp.canon[key]).to(torch.float32)
        set_module_tensor_to_device(model, n, "cpu", value=value)


def unload_params(model: Any, names: list[str]) -> None:
    """Send parameters `names` back to the meta device (their memory is freed)."""
    from accelerate.utils import set_module_tensor_to_device

    for n in names:
        set_module_tensor_to_device(model, n, "meta")


def decoder_layers(model: Any) -> tuple[str, Any]:
    """(name, ModuleList) of the language model's decoder layers; NotLayerwise when there is none."""
    import torch

    for name, mod in model.named_modules():
        if (
            isinstance(mod, torch.nn.ModuleList)
            and name.endswith("layers")
            and canonical_part(canon_name(name + ".0.x")) == "language"
        ):
            return name, mod
    raise NotLayerwise("no decoder layer list found")


def _libc() -> Any:
    """glibc through ctypes, or None (another libc, or none found)."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            _LIBC = lib if lib is not None and hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else False
        except OSError:
            _LIBC = False
    return _LIBC or None


_LIBC: Any = None


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc `malloc_trim`) after a layer is dropped: glibc's
    dynamic mmap threshold otherwise keeps freed layer-sized blocks in the heap (measured on the 134M
    bench model: peak 627 MB without, see docs/benchmarks.md). No-op off glibc."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)


def mmap_large_blocks(threshold: int = 1 << 20) -> None:
    """Serve every allocation of `threshold` bytes or more with its own mmap, returned to the OS on
    free (glibc `mallopt(M_MMAP_THRESHOLD)`, which also stops the threshold from growing): for the
    calibration child, whose tensors of a layer's size come and go; measured on the 134M bench model,
    layer-wise SNIP's peak 489 -> 455 MB, time within the noise (docs/benchmarks.md). Smaller
    activation blocks stay on the heap (a 128 KiB threshold page-faulted too often). No-op off glibc."""
    lib = _libc()
    if lib is not None:
        lib.mallopt(-3, int(threshold))  # M_MMAP_THRESHOLD


def wanda_norms_by_layer(inp: Any, rows: list[tuple[list[int], list[int]]], *, batch_size: int = 8, pad_id: int = 0,
                         label: str = "wanda") -> dict[str, Any]:
    """||X_j||_2 per Linear input feature over the response tokens, one layer in memory at a time."""
    import torch

    from safeadapt.core.runtime import track
    from safeadapt.repair.calibrate.vision import check_layerwise_images

    check_layerwise_images(inp.config, rows)
    model = empty_model(inp)
    lname, layers = decoder_layers(model)
    linears = {k: m for k, m in language_linears(model).items() if layer_index(k) is not None}
    sums = {k: torch.zeros(m.in_features, dtype=torch.float64) for k, m in linears.items()}
    state: dict[str, Any] = {"mask": None, "last": (None, None)}
    bs = list(batches(rows, batch_size, pad_id))
    cached = [(h, kw, b["scored"]) for (h, kw), b in zip(capture_layer_inputs(model, layers[0], inp, bs), bs)]
    with torch.inference_mode():
        for i, layer in enumerate(track(list(layers), f"calibration ({label}, by layer)")):
            names = layer_param_names(lname, i, layer)
            load_params(model, inp, names)
            release_freed_memory()  # the checkpoint-dtype copies just freed
            handles = norm_hooks({k: m for k, m in linears.items() if layer_index(k) == i}, sums, state)
            try:
                for j, (h, kw, mask) in enumerate(cached):
                    state["mask"], state["last"] = mask, (None, None)
                    out = layer(h, **kw)
                    cached[j] = (out[0] if isinstance(out, tuple) else out, kw, mask)
            finally:
                for hd in handles:
                    hd.remove()
                state["last"] = (None, None)
                unload_params(model, names)
                release_freed_memory()
    return {k: v.sqrt().float() for k, v in sums.items()}


def layer_param_names(lname: str, i: int, layer: Any) -> list[str]:
    """Full parameter names of decoder layer `i` (ModuleList `lname`)."""
    return [f"{lname}.{i}.{n}" for n, _ in layer.named_parameters()]


def capture_layer_inputs(
    model: Any, first: Any, inp: Any, feeds: list[dict[str, Any]]
) -> list[tuple[Any, dict[str, Any]]]:
    """(hidden states, layer kwargs: position embeddings, mask...) entering decoder layer `first` for
    each feed (input_ids + attention_mask, and `vision`: the rows' image tensors); the model runs on
    embeddings read row by row from the checkpoint, with the image features (vision tower and
    projector loaded for this, then dropped) at the image-token positions, and stops at that layer.
    Plain (not inference-mode) tensors: usable with autograd."""
    import torch

    from safeadapt.repair.calibrate.vision import image_param_names, merge_image_features

    emb_param = next(n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight)
    captured: dict[str, Any] = {}
    out = []

    def catch(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured["h"] = args[0] if args else kwargs.pop("hidden_states")
        captured["kw"] = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        raise _Stop

    towers = image_param_names(model) if any(b.get("vision") for b in feeds) else []
    load_params(model, inp, towers)
    hook = first.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        with torch.no_grad():
            for b in feeds:
                try:
                    ids = b["input_ids"]
                    if b.get("vision"):  # placeholder ids get image features: embed a valid id there
                        image_id = model.config.image_token_id
                        embeds = embed_rows(inp, canon_name(emb_param), ids.masked_fill(ids == image_id, 0))
                        embeds = merge_image_features(model, ids, embeds, b["vision"])
                    else:
                        embeds = embed_rows(inp, canon_name(emb_param), ids)
                    model(inputs_embeds=embeds, attention_mask=b["attention_mask"], use_cache=False)
                except _Stop:
                    pass
                out.append((captured["h"], captured["kw"]))
    finally:
        hook.remove()
        unload_params(model, towers)
        release_freed_memory()
    return out


def embed_rows(inp: Any, key: str, ids: Any) -> Any:
    """Input embeddings of `ids` from the checkpoint's embedding matrix, reading only the rows used."""
    import torch

    name = inp.canon[key]
    uniq, inverse = torch.unique(ids, return_inverse=True)
    if not inp.source.can_read_rows:
        return inp.source.get(name).to(torch.float32)[ids]
    u = uniq.tolist()
    parts, i = [], 0
    while i < len(u):  # contiguous runs of token ids: one positioned read each
        j = i
        while j + 1 < len(u) and u[j + 1] == u[j] + 1:
            j += 1
        parts.append(inp.source.get_rows(name, u[i], u[j] + 1).to(torch.float32))
        i = j + 1
    return torch.cat(parts)[inverse]
