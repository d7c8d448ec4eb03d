"""`summarize(DIR)`: the summary of a finished demo study, DIR/results.json and the printed table;
one seed (`demo.summarize_one`) or several (`demo_seeds.summarize_seeds`, across-seed intervals)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeadapt.world.demo import _load_study, summarize_one
from safeadapt.world.demo_seeds import summarize_seeds


def summarize(study_dir: str | Path) -> dict[str, Any]:
    """Write DIR/results.json from a finished demo study and print the table; returns the dict."""
    study_dir = Path(study_dir)
    if len(_load_study(study_dir).get("seeds") or []) > 1:
        return summarize_seeds(study_dir)
    return summarize_one(study_dir)
