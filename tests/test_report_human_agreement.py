"""The report's shipped judge-human agreement numbers (safeadapt/report/judge_human_agreement.json)
are recomputed from the labelled data by bench/judge_agreement.py: a judge or data change that moves
them fails here instead of leaving the report quoting stale numbers (skipped without ../shared/data)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
XSTEST = ROOT.parent / "shared" / "data" / "xstest"


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, c - h), min(1.0, c + h)


@pytest.mark.skipif(not XSTEST.is_dir(), reason="../shared/data/xstest absent")
def test_shipped_agreement_numbers_are_the_measured_ones(tmp_path: Path) -> None:
    out = tmp_path / "agreement.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "judge_agreement.py"), "--data", str(XSTEST), "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    measured = json.loads(out.read_text())
    shipped = json.loads(resources.files("safeadapt.report").joinpath("judge_human_agreement.json").read_text())[
        "refusal"
    ]
    assert shipped and all("source" in e for e in shipped)
    agree = total = 0.0
    for e in shipped:
        src = e["source"]
        if "pooled" in src:
            continue
        row = next(r for r in measured[src["table"]] if r["file"] == src["file"])["splits"][src["split"]]
        assert e["n"] == row["n"], e["data"]
        assert e["agreement"] == pytest.approx(row["refusal_judge"], abs=5e-4), e["data"]
        assert e["ci"] == pytest.approx(list(row["refusal_judge_wilson95"]), abs=5e-4), e["data"]
        if e.get("kappa") is not None:
            assert e["kappa"] == pytest.approx(row["refusal_judge_kappa"], abs=5e-4), e["data"]
        agree += row["refusal_judge"] * row["n"]
        total += row["n"]
    pooled = next(e for e in shipped if "pooled" in e["source"])
    assert pooled["n"] == total
    assert pooled["agreement"] == pytest.approx(agree / total, abs=5e-4)
    assert pooled["ci"] == pytest.approx(list(_wilson(agree / total, int(total))), abs=5e-4)
