"""Lazy, one-tensor-at-a-time access to a checkpoint's weights (sharded or single safetensors, GGUF,
or pickle .bin when allowed), with headers validated up front so a truncated or corrupt file fails
with one line naming it.

Tensor streaming: safetensors are read with `readinto` into a freshly allocated tensor (no mmap) by
default. Measured on a ~500 MB checkpoint (docs/benchmarks.md, "Tensor streaming"), mmap via
`safe_open` leaves every page it touched resident (file-backed, counted in RSS) until the file is
closed, so a full merge pass peaks near the sum of all inputs; `readinto` peaks near the largest
tensor times the number of inputs. `mode="mmap"` keeps the `safe_open` path available."""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.resolve import ModelRef, resolve_model_ref

# safetensors dtype codes -> torch dtype names and element sizes
_ST_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1), "U8": ("uint8", 1),
    "BOOL": ("bool", 1), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
    "U16": ("uint16", 2), "U32": ("uint32", 4), "U64": ("uint64", 8),
}
TORCH_TO_ST = {v[0]: k for k, v in _ST_DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024
# torch dtype name -> numpy dtype for raw reads (bfloat16 read as its 16 bits, then widened)
_NUMPY_DTYPES = {"float32": "<f4", "float16": "<f2", "float64": "<f8", "int64": "<i8", "int32": "<i4", "int16": "<i2",
                 "int8": "i1", "uint8": "u1", "bool": "?", "bfloat16": "<u2"}

ReadMode = Literal["read", "mmap"]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # torch dtype name, e.g. "float32"
    file: Path
    start: int  # absolute byte offset in file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_safetensors_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse and validate a safetensors header without reading tensor data."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise SafeAdaptError(f"corrupt safetensors file {path}: shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER or 8 + n > size:
                raise SafeAdaptError(
                    f"corrupt or truncated safetensors file {path}: header length {n} exceeds file size {size}"
                )
            header_bytes = f.read(n)
    except OSError as e:
        raise SafeAdaptError(f"cannot read {path}: {e.strerror}") from None
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SafeAdaptError(f"corrupt safetensors file {path}: header is not valid JSON") from None
    if not isinstance(header, dict):
        raise SafeAdaptError(f"corrupt safetensors file {path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out: dict[str, TensorInfo] = {}
    for name, spec in header.items():
        try:
            code, shape, (s, e) = spec["dtype"], tuple(int(x) for x in spec["shape"]), spec["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafeAdaptError(f"corrupt safetensors file {path}: bad header entry for tensor {name}") from None
        if code not in _ST_DTYPES:
            raise SafeAdaptError(f"unsupported dtype {code} for tensor {name} in {path}")
        dtype, itemsize = _ST_DTYPES[code]
        if e - s != math.prod(shape) * itemsize or s < 0:
            raise SafeAdaptError(
                f"corrupt safetensors file {path}: tensor {name} has {e - s} bytes for shape {list(shape)} {code}"
            )
        if base + e > size:
            raise SafeAdaptError(
                f"truncated safetensors file {path}: tensor {name} ends at byte {base + e} but the file has {size}"
            )
        out[name] = TensorInfo(name, shape, dtype, path, base + s, base + e)
    return out, {str(k): str(v) for k, v in meta.items()}


class TensorSource:
    """Read-only, lazy view of one model's tensors by on-disk name."""

    ref: ModelRef

    def keys(self) -> list[str]:
        raise NotImplementedError

    def info(self, name: str) -> TensorInfo:
        raise NotImplementedError

    def get(self, name: str) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    can_read_rows = False

    def get_rows(self, name: str, r0: int, r1: int) -> Any:
        return self.get(name)[r0:r1]

    def __contains__(self, name: object) -> bool:
        return name in set(self.keys())

    def __enter__(self) -> "TensorSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def total_bytes(self) -> int:
        return sum(self.info(k).nbytes for k in self.keys())


class SafetensorsSource(TensorSource):
    """An HF dir (model.safetensors, or shards listed in model.safetensors.index.json) or one file."""

    def __init__(self, ref: ModelRef, mode: ReadMode = "read") -> None:
        self.ref, self.mode = ref, mode
        if ref.kind == "safetensors_file":
            files = [ref.path]
        else:
            index = ref.path / "model.safetensors.index.json"
            if index.is_file():
                try:
                    wm = json.loads(index.read_text())["weight_map"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise SafeAdaptError(f"corrupt shard index {index}: no weight_map") from None
                files = []
                for fname in dict.fromkeys(wm.values()):
                    fp = ref.path / fname
                    if not fp.is_file():
                        raise SafeAdaptError(f"shard {fp} listed in {index} is missing")
                    files.append(fp)
            elif (ref.path / "model.safetensors").is_file():
                files = [ref.path / "model.safetensors"]
            else:
                files = sorted(ref.path.glob("*.safetensors"))
        self._infos: dict[str, TensorInfo] = {}
        for fp in files:
            infos, _ = read_safetensors_header(fp)
            for k, v in infos.items():
                if k in self._infos:
                    raise SafeAdaptError(
                        f"tensor {k} appears twice in {ref.path} ({self._infos[k].file.name}, {fp.name})"
                    )
                self._infos[k] = v
        self._handles: dict[Path, Any] = {}

    def keys(self) -> list[str]:
        return list(self._infos)

    def info(self, name: str) -> TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise SafeAdaptError(f"tensor {name} not found in {self.ref.path}") from None

    def _handle(self, path: Path) -> Any:
        h = self._handles.get(path)
        if h is None:
            if self.mode == "mmap":
                from safetensors import safe_open

                h = safe_open(str(path), framework="pt")
            else:
                h = open(path, "rb", buffering=0)
            self._handles[path] = h
        return h

    def get(self, name: str) -> Any:
        ti = self.info(name)
        if self.mode == "mmap":
            try:
                return self._handle(ti.file).get_tensor(name)
            except Exception as e:  # safetensors raises its own error types
                raise SafeAdaptError(f"cannot read tensor {name} from {ti.file}: {e}") from None
        return self._read(ti, ti.start, ti.shape)

    @property
    def can_read_rows(self) -> bool:
        return self.mode == "read"

    def get_rows(self, name: str, r0: int, r1: int) -> Any:
        """Rows r0:r1 (first dimension) of tensor `name`, read with one positioned `readinto`
        (releases the GIL) into a fresh tensor: chunked streaming of large tensors."""
        ti = self.info(name)
        if not ti.shape or not 0 <= r0 <= r1 <= ti.shape[0]:
            raise SafeAdaptError(f"rows {r0}:{r1} out of range for tensor {name} {list(ti.shape)} in {ti.file}")
        row_bytes = ti.nbytes // ti.shape[0] if ti.shape[0] else 0
        return self._read(ti, ti.start + r0 * row_bytes, (r1 - r0, *ti.shape[1:]))

    def _read(self, ti: TensorInfo, start: int, shape: tuple[int, ...]) -> Any:
        import torch

        out = torch.empty(shape, dtype=getattr(torch, ti.dtype))
        if out.numel():
            self._pread(ti, start, memoryview(out.reshape(-1).view(torch.uint8).numpy()))
        return out

    def _pread(self, ti: TensorInfo, start: int, buf: memoryview) -> None:
        fd = self._handle(ti.file).fileno()
        got, nbytes = 0, len(buf)
        while got < nbytes:
            n = os.preadv(fd, [buf[got:]], start + got)
            if not n:
                raise SafeAdaptError(f"truncated safetensors file {ti.file}: tensor {ti.name} is cut short")
            got += n

    def get_rows_numpy(self, name: str, r0: int, r1: int) -> Any:
        """Rows r0:r1 as a numpy array without importing torch (float16/32/64 and integer dtypes as
        stored, bfloat16 widened exactly to float32); other dtypes through `get_rows`."""
        import numpy as np

        ti = self.info(name)
        code = _NUMPY_DTYPES.get(ti.dtype)
        if self.mode != "read" or code is None or not ti.shape:
            t = self.get_rows(name, r0, r1) if ti.shape else self.get(name)
            return (t.float() if ti.dtype == "bfloat16" or ti.dtype.startswith("float8") else t).numpy()
        if not 0 <= r0 <= r1 <= ti.shape[0]:
            raise SafeAdaptError(f"rows {r0}:{r1} out of range for tensor {name} {list(ti.shape)} in {ti.file}")
        out = np.empty((r1 - r0, *ti.shape[1:]), dtype=code)
        row_bytes = ti.nbytes // ti.shape[0] if ti.shape[0] else 0
        if out.size:
            self._pread(ti, ti.start + r0 * row_bytes, memoryview(out.reshape(-1).view(np.uint8)))
        if ti.dtype == "bfloat16":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out

    def close(self) -> None:
        for h in self._handles.values():
            close = getattr(h, "close", None)
            if close is not None:
                close()
        self._handles.clear()


class DictSource(TensorSource):
    """Tensors already in memory (GGUF dequantised by transformers, or pickle shards)."""

    def __init__(self, ref: ModelRef, tensors: dict[str, Any], config: dict[str, Any] | None = None) -> None:
        self.ref, self._t = ref, tensors
        self.config = config  # config.json contents when the format carries them (GGUF metadata)

    def keys(self) -> list[str]:
        return list(self._t)

    def info(self, name: str) -> TensorInfo:
        if name not in self._t:
            raise SafeAdaptError(f"tensor {name} not found in {self.ref.file}")
        t = self._t[name]
        return TensorInfo(
            name, tuple(t.shape), str(t.dtype).removeprefix("torch."), self.ref.file, 0, t.numel() * t.element_size()
        )

    can_read_rows = True  # already in memory: row slices are views

    def get(self, name: str) -> Any:
        self.info(name)
        return self._t[name]


def _gguf_tensors(ref: ModelRef) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dequantise a GGUF file to HF-named fp32 tensors with transformers' own GGUF mapping."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    try:
        config = AutoConfig.from_pretrained(str(ref.path), gguf_file=ref.gguf_file)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
        parsed = load_gguf_checkpoint(str(ref.file), return_tensors=True, model_to_load=skeleton)
    except (ValueError, OSError, KeyError) as e:
        raise SafeAdaptError(f"cannot read GGUF file {ref.file}: {' '.join(str(e).split())[:200]}") from None
    return dict(parsed["tensors"]), config.to_dict()


def _pickle_tensors(ref: ModelRef) -> dict[str, Any]:
    import torch

    files = sorted(ref.path.glob("*.bin")) + sorted(ref.path.glob("*.pt")) + sorted(ref.path.glob("*.pth"))
    out: dict[str, Any] = {}
    for fp in files:
        try:
            sd = torch.load(fp, map_location="cpu", weights_only=True)
        except Exception as e:
            raise SafeAdaptError(f"cannot load pickle checkpoint {fp}: {type(e).__name__}") from None
        out.update({k: v for k, v in sd.items() if hasattr(v, "shape")})
    return out


def default_read_mode() -> ReadMode:
    """`read` unless SAFEADAPT_TENSOR_READ=mmap."""
    return "mmap" if os.environ.get("SAFEADAPT_TENSOR_READ", "").lower() == "mmap" else "read"


def open_tensors(
    ref: str | os.PathLike | ModelRef, *, allow_pickle: bool = False, mode: ReadMode | None = None
) -> TensorSource:
    """Open a model's tensors lazily (safetensors) or dequantised in memory (GGUF / pickle).
    `mode`: "read" (readinto, default) or "mmap" (safetensors `safe_open`)."""
    mode = mode or default_read_mode()
    mref = ref if isinstance(ref, ModelRef) else resolve_model_ref(ref, allow_pickle=allow_pickle)
    if mref.kind in ("hf_dir", "hub", "safetensors_file"):
        return SafetensorsSource(mref, mode=mode)
    if mref.kind == "gguf":
        tensors, config = _gguf_tensors(mref)
        return DictSource(mref, tensors, config)
    if mref.kind == "pickle_dir":
        if not allow_pickle:
            raise SafeAdaptError(f"{mref.path} holds pickle weights; pass --allow-pickle if you trust it")
        return DictSource(mref, _pickle_tensors(mref))
    raise SafeAdaptError(f"cannot read tensors from {mref.ref}")


def iter_tensors(source: TensorSource, names: list[str] | None = None) -> Iterator[tuple[str, Any]]:
    """Yield (name, tensor) one at a time; the caller drops each before the next is read."""
    for n in names if names is not None else source.keys():
        yield n, source.get(n)
