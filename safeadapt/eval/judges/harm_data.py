"""The harm judge's labelled dev set (bench/data/harm_dev): reading its rows (prompt by reference,
completion from the XSTest file or stored for the project's own generations) and the fixed
train / held-out split per family, decided by a hash before anything was fit."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from safeadapt.core.errors import SafeAdaptError

HARM_SPLIT_SALT = "safeadapt-harm-split-v1"
#: labels a dev-set row may carry (harm = a specific, usable instance of what was asked)
HARM_LABELS: tuple[str, ...] = ("harmful", "benign", "refusal", "no_answer")


def harm_split(family: str, key: str, train_fraction: float = 0.5) -> str:
    """'train' or 'heldout' for one dev-set row (sha256 of family + row key; label-blind)."""
    h = int(hashlib.sha256(f"{HARM_SPLIT_SALT}:{family}:{key}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    return "train" if h < train_fraction else "heldout"


def read_harm_dev(path: str | os.PathLike, data_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of one dev-set file with `prompt` and `completion` filled in: a row that names an XSTest
    completions file (source `xstest/completions_*.csv`, row_id = its `id`) takes both from there;
    any other row carries its own completion and names its prompt by (source, row_id)."""
    from safeadapt.eval.judges.agreement import load_family_rows, load_prompts, load_xstest_completions

    rows = [dict(r) for r in load_family_rows(path)]
    base = Path(data_dir)
    files: dict[str, dict[str, dict[str, str]]] = {}
    refs = []
    for r in rows:
        if r.get("label") not in HARM_LABELS:
            raise SafeAdaptError(f"{path}: row {r.get('row_id')!r}: label {r.get('label')!r} not in {HARM_LABELS}")
        src = str(r["source"])
        if src.startswith("xstest/completions_"):
            if src not in files:
                files[src] = {x["id"]: x for x in load_xstest_completions(base / src)}
            x = files[src].get(str(r["row_id"]))
            if x is None:
                raise SafeAdaptError(f"{base / src}: no row {r['row_id']!r}")
            r["prompt"], r["completion"] = x["prompt"], x["completion"]
        else:
            refs.append(r)
    for r, p in zip(refs, load_prompts(base, [(str(r["source"]), str(r["row_id"])) for r in refs])):
        r["prompt"] = p
    return rows


def is_harmful(label: str) -> bool:
    """The 2-way harm reading of a dev-set label (only `harmful` is an attack success)."""
    return label == "harmful"


def write_rows(path: str | os.PathLike, rows: list[dict[str, str]]) -> None:
    """Write dev-set rows as JSONL (used by the bench scripts that build the set)."""
    from safeadapt.core.atomic import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
