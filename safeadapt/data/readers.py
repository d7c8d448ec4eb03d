"""File and hub readers for the dataset loaders: CSV / TSV / JSON / JSONL / TXT / parquet on disk,
or a Hugging Face `datasets` id, read into `Row`s (a dict plus its location, e.g. "file.jsonl:17");
malformed rows carry an `__error__` for the loader to report or skip."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from safeadapt.core.errors import SafeAdaptError


@dataclass
class Row:
    data: dict[str, Any]
    where: str  # "file.csv:17" / "file.json:item 3" / "org/name[train]:row 5"
    index: int  # 0-based ordinal among data rows


# ---------------------------------------------------------------------------------------------
# readers: bytes on disk -> Row(dict, location)
def _read_csv(path: Path, delimiter: str = ",") -> Iterator[Row]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            raise SafeAdaptError(f"{path}:1: duplicate column names in header {header}")
        prev_end = reader.line_num
        i = 0
        for values in reader:
            start = prev_end + 1
            prev_end = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            where = f"{path}:{start}"
            if len(values) != len(header):
                yield Row({"__error__": f"expected {len(header)} fields, found {len(values)}"}, where, i)
            else:
                yield Row(dict(zip(header, values)), where, i)
            i += 1


def _read_jsonl(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8-sig") as fh:
        i = 0
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield Row({"__error__": f"invalid JSON ({e.msg} at column {e.colno})"}, where, i)
            else:
                if isinstance(obj, dict):
                    yield Row(obj, where, i)
                else:
                    yield Row({"__error__": f"expected a JSON object, found {type(obj).__name__}"}, where, i)
            i += 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _read_json(path: Path) -> Iterator[Row]:
    """A JSON array of objects, an object of id -> object (MM-SafetyBench), or an object with one
    list-valued key (e.g. {"data": [...]}). Locations carry real line numbers."""
    text = path.read_text(encoding="utf-8-sig")
    dec = json.JSONDecoder()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as e:
        raise SafeAdaptError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    if isinstance(whole, list):
        pos = _skip_ws(text, 0) + 1  # after '['
        for i in range(len(whole)):
            pos = _skip_ws(text, pos)
            obj, end = dec.raw_decode(text, pos)
            where = f"{path}:{line_of(pos)}"
            if isinstance(obj, dict):
                yield Row(obj, where, i)
            else:
                yield Row({"__error__": f"expected a JSON object, found {type(obj).__name__}"}, where, i)
            pos = _skip_ws(text, end)
            if pos < len(text) and text[pos] == ",":
                pos += 1
        return
    if isinstance(whole, dict):
        lists = [k for k, v in whole.items() if isinstance(v, list)]
        if whole and all(isinstance(v, dict) for v in whole.values()):
            pos = _skip_ws(text, 0) + 1  # after '{'
            for i in range(len(whole)):
                pos = _skip_ws(text, pos)
                key, end = dec.raw_decode(text, pos)
                pos = _skip_ws(text, end) + 1  # after ':'
                pos = _skip_ws(text, pos)
                obj, end = dec.raw_decode(text, pos)
                yield Row({"_key": key, **obj}, f"{path}:{line_of(pos)}", i)
                pos = _skip_ws(text, end)
                if pos < len(text) and text[pos] == ",":
                    pos += 1
            return
        if len(lists) == 1:
            for i, obj in enumerate(whole[lists[0]]):
                where = f"{path}:{lists[0]}[{i}]"
                if isinstance(obj, dict):
                    yield Row(obj, where, i)
                else:
                    yield Row({"__error__": f"expected a JSON object, found {type(obj).__name__}"}, where, i)
            return
    raise SafeAdaptError(
        f"{path}: expected a JSON list of objects, an object of objects, or an object with one list; "
        f"found {type(whole).__name__}"
    )


def _read_txt(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8-sig") as fh:
        i = 0
        for lineno, line in enumerate(fh, 1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            yield Row({"prompt": text.strip()}, f"{path}:{lineno}", i)
            i += 1


def _read_parquet(path: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with datasets
        raise SafeAdaptError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - any pyarrow failure is a bad file
        raise SafeAdaptError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})".splitlines()[0]) from None
    for i, rec in enumerate(table.to_pylist()):
        yield Row(rec, f"{path}:row {i + 1}", i)


READERS: dict[str, Callable[[Path], Iterator[Row]]] = {
    ".csv": _read_csv, ".tsv": lambda p: _read_csv(p, "\t"), ".jsonl": _read_jsonl, ".ndjson": _read_jsonl,
    ".json": _read_json, ".txt": _read_txt, ".parquet": _read_parquet,
}


def read_file_rows(path: Path) -> list[Row]:
    ext = path.suffix.lower()
    if ext not in READERS:
        raise SafeAdaptError(
            f"{path}: unsupported file type {ext or '(none)'}; use one of {', '.join(sorted(READERS))}"
        )
    return list(READERS[ext](path))


def _hub_rows(repo_id: str, opts: dict[str, Any]) -> list[Row]:
    offline = any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    if offline:
        raise SafeAdaptError(
            f"dataset {repo_id!r} is not a local file and the hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set); "
            f"download it once and pass the local file path instead"
        )
    split = opts.get("split", "train")
    try:
        import datasets

        ds = datasets.load_dataset(repo_id, opts.get("config"), split=split, revision=opts.get("revision"))
    except Exception as e:  # noqa: BLE001 - network / missing dataset / bad split are user errors
        msg = " ".join(str(e).split())[:300]
        raise SafeAdaptError(
            f"could not load hub dataset {repo_id!r} split {split!r}: {type(e).__name__}: {msg}"
        ) from None
    return [Row(dict(r), f"{repo_id}[{split}]:row {i + 1}", i) for i, r in enumerate(ds)]
