"""Streaming sharded safetensors writer plus the support files (config, generation config,
tokenizer, chat template, processor) that make an output directory loadable.

All output shapes/dtypes are known before any tensor is computed, so each shard's header is written
first and tensor bytes are appended as they are produced: peak memory is one tensor (or one row
block, `write_rows`), not one shard.
Use inside `safeadapt.core.atomic.atomic_dir` so an interrupted write leaves nothing complete-looking."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from safeadapt.core.atomic import atomic_write_json
from safeadapt.core.errors import SafeAdaptError
from safeadapt.io.tensors import TORCH_TO_ST

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.I)

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "merges.txt", "vocab.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json", "spiece.model",
)
PROCESSOR_FILES = (
    "processor_config.json",
    "preprocessor_config.json",
    "image_processor_config.json",
    "video_preprocessor_config.json",
)
CONFIG_FILES = ("config.json", "generation_config.json")


def parse_size(s: str | int) -> int:
    """'5GB' -> 5e9 bytes; '500MiB' -> 500*2**20; ints pass through."""
    if isinstance(s, int):
        return s
    m = _SIZE.match(str(s))
    if not m:
        raise SafeAdaptError(f"bad size {s!r}; use e.g. 5GB, 500MB, 2GiB")
    num, unit = float(m.group(1)), (m.group(2) or "B").upper()
    base = 1024 if "I" in unit else 1000
    power = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit.rstrip("B").rstrip("I")]
    n = int(num * base**power)
    if n <= 0:
        raise SafeAdaptError(f"bad size {s!r}: must be positive")
    return n


@dataclass
class PlannedTensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # torch dtype name

    @property
    def nbytes(self) -> int:
        import torch

        n = 1
        for d in self.shape:
            n *= d
        return n * torch.empty(0, dtype=getattr(torch, self.dtype)).element_size()


@dataclass
class _Shard:
    filename: str
    tensors: list[PlannedTensor] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


class StreamingShardWriter:
    """Write `plan` (ordered tensors) into shards of at most `max_shard_size` bytes.

    Call `write(name, tensor)` in plan order; `finish()` checks completeness and writes the index."""

    def __init__(self, out_dir: Path, plan: list[PlannedTensor], *, max_shard_size: int | str = "5GB",
                 metadata: dict[str, str] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.max = parse_size(max_shard_size)
        self.metadata = {"format": "pt", **(metadata or {})}
        shards: list[list[PlannedTensor]] = [[]]
        size = 0
        for t in plan:
            if shards[-1] and size + t.nbytes > self.max:
                shards.append([])
                size = 0
            shards[-1].append(t)
            size += t.nbytes
        n = len(shards)
        names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        self.shards = [_Shard(fn, ts) for fn, ts in zip(names, shards)]
        self._order = [(si, t) for si, s in enumerate(self.shards) for t in s.tensors]
        self._pos = 0
        self._fh: BinaryIO | None = None
        self._cur = -1

    def _open_shard(self, si: int) -> None:
        if self._fh is not None:
            self._fh.close()
        shard = self.shards[si]
        header: dict[str, Any] = {"__metadata__": self.metadata}
        off = 0
        for t in shard.tensors:
            header[t.name] = {
                "dtype": TORCH_TO_ST[t.dtype],
                "shape": list(t.shape),
                "data_offsets": [off, off + t.nbytes],
            }
            off += t.nbytes
        hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
        hb += b" " * ((8 - len(hb) % 8) % 8)
        self._fh = open(self.out_dir / shard.filename, "wb")
        self._fh.write(len(hb).to_bytes(8, "little"))
        self._fh.write(hb)
        self._cur = si

    def _next(self, name: str) -> PlannedTensor:
        if self._pos >= len(self._order):
            raise SafeAdaptError(f"writer got unplanned tensor {name}")
        si, planned = self._order[self._pos]
        if planned.name != name:
            raise RuntimeError(f"writer expected tensor {planned.name}, got {name}")
        if si != self._cur:
            self._open_shard(si)
        return planned

    def _append(self, tensor: Any) -> int:
        import torch

        assert self._fh is not None
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
        self._fh.write(memoryview(data))
        return data.nbytes

    def write(self, name: str, tensor: Any) -> None:
        planned = self._next(name)
        if tuple(tensor.shape) != planned.shape or str(tensor.dtype).removeprefix("torch.") != planned.dtype:
            raise RuntimeError(
                f"tensor {name}: planned {planned.shape} {planned.dtype}, got {tuple(tensor.shape)} {tensor.dtype}"
            )
        self._append(tensor)
        self._pos += 1

    def write_rows(self, name: str, chunks: Iterable[Any]) -> None:
        """Write tensor `name` as consecutive row blocks (each `[rows, *shape[1:]]`, planned dtype),
        so the whole tensor never has to exist in memory."""
        planned = self._next(name)
        got = 0
        for c in chunks:
            if tuple(c.shape[1:]) != planned.shape[1:] or str(c.dtype).removeprefix("torch.") != planned.dtype:
                raise RuntimeError(
                    f"tensor {name}: planned rows of {planned.shape[1:]} {planned.dtype}, got {tuple(c.shape)} "
                    f"{c.dtype}"
                )
            got += self._append(c)
        if got != planned.nbytes:
            raise RuntimeError(f"tensor {name}: wrote {got} bytes, planned {planned.nbytes}")
        self._pos += 1

    def finish(self) -> list[Path]:
        if self._pos != len(self._order):
            missing = self._order[self._pos][1].name
            raise RuntimeError(f"writer finished early; tensor {missing} not written")
        if self._fh is None and not self.shards[0].tensors:
            self._open_shard(0)
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
            self._fh = None
        if len(self.shards) > 1:
            weight_map = {t.name: s.filename for s in self.shards for t in s.tensors}
            total = sum(s.nbytes for s in self.shards)
            atomic_write_json(self.out_dir / "model.safetensors.index.json",
                              {"metadata": {"total_size": total}, "weight_map": weight_map})
        return [self.out_dir / s.filename for s in self.shards]

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def copy_support_files(src_dir: Path | None, out_dir: Path, *, what: tuple[str, ...]) -> list[str]:
    """Copy the named support files that exist in `src_dir` into `out_dir`; returns copied names."""
    copied: list[str] = []
    if src_dir is None or not src_dir.is_dir():
        return copied
    for name in what:
        f = src_dir / name
        if f.is_file():
            shutil.copyfile(f, out_dir / name)
            copied.append(name)
    return copied
