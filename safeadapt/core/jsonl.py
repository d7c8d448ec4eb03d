"""Append-only JSONL checkpoints for long jobs (generation, judging, sweeps), and reading a user's
JSON/JSONL data file with one-line errors (`read_json_records`).

Each record is one line written with a single `write` + flush + fsync, so a kill leaves at most a
torn last line, which `read_jsonl_records` drops. Resuming = read the keys already done, skip them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator


def read_json_records(path: Path) -> list[tuple[int | None, Any]]:
    """(line, record) pairs of a user's data file: a `.json` file or one starting with "[" is one
    JSON list (or an object holding it under "data"/"rows"/"items"/"records"; line None), anything
    else is JSONL (one record a line, blank lines skipped). UTF-8, BOM allowed. Bad JSON raises a
    one-line `file:line: invalid JSON: msg`."""
    from safeadapt.core.errors import SafeAdaptError

    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SafeAdaptError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        if isinstance(data, dict):
            data = next((data[k] for k in ("data", "rows", "items", "records") if isinstance(data.get(k), list)), data)
        if not isinstance(data, list):
            raise SafeAdaptError(f"{path}: expected a JSON list of records (or an object with a 'rows' or 'data' list)")
        return [(None, r) for r in data]
    out: list[tuple[int | None, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise SafeAdaptError(f"{path}:{n}: invalid JSON: {e.msg}") from None
    return out


def read_jsonl_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read complete records; a torn trailing line (from a kill) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1 or all(not x.strip() for x in lines[i + 1 :]):
                break  # torn tail from an interrupted write
            raise
    return out


class JsonlCheckpoint:
    """Resumable record store keyed by `key_field`. `done` holds keys already written."""

    def __init__(self, path: str | os.PathLike, key_field: str = "key") -> None:
        self.path = Path(path)
        self.key_field = key_field
        self.path.parent.mkdir(parents=True, exist_ok=True)
        records = read_jsonl_records(self.path)
        self.records: dict[str, dict[str, Any]] = {}
        for r in records:
            self.records[str(r[key_field])] = r
        # rewrite without a torn tail so appends start on a clean line
        if self.path.exists():
            raw = self.path.read_bytes()
            if raw and not raw.endswith(b"\n"):
                from safeadapt.core.atomic import atomic_write_text

                atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))

    @property
    def done(self) -> set[str]:
        return set(self.records)

    def __contains__(self, key: object) -> bool:
        return str(key) in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(str(key))

    def append(self, record: dict[str, Any]) -> None:
        self.extend([record])

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        records = [r for r in records if str(r[self.key_field]) not in self.records]
        if not records:
            return
        payload = "".join(json.dumps(r, default=str) + "\n" for r in records).encode("utf-8")
        with open(self.path, "ab") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[str(r[self.key_field])] = r

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)
