"""A synthetic objective with a known Pareto front for the search tests (no models): x = safety
weight, y = density. asr = (1 - x)(1 + y), helpfulness = (1 - x^2)(1 - y/2), over_refusal = y/2:
y > 0 worsens all three, and x trades ASR against helpfulness, so the front is y = 0, any x. The proxy fidelity adds a
small deterministic perturbation. Optionally logs
every call (one line per evaluation) and sleeps, for the kill test."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

SPACE: dict[str, Any] = {
    "seed": 0,
    "models": {"vl": "vl-model", "safety": "safety-model", "base": "base-model"},
    "methods": {"dare_linear": {"base": "base", "models": ["vl", "safety"], "params": {
        "weight@safety": {"low": 0.0, "high": 1.0},
        "weight@vl": {"one_minus": "weight@safety"},
        "density@safety": {"low": 0.0, "high": 1.0},
        "density@vl": 0.7}}},
    "search": {"trials": 40, "proxy_frac": 0.3},
}


def truth(x: float, y: float) -> dict[str, float]:
    return {"text_asr": (1.0 - x) * (1.0 + y), "over_refusal": y / 2.0, "helpfulness": (1.0 - x * x) * (1.0 - y / 2.0)}


class Synthetic:
    def __init__(self, log: str | None = None, sleep: float = 0.0) -> None:
        self.log, self.sleep, self.calls = log, sleep, 0

    def prepare(self) -> None:
        pass

    def __call__(self, method: str, params: dict[str, Any], fidelity: str, work: Path) -> dict[str, Any]:
        self.calls += 1
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{fidelity} {params['weight@safety']!r} {params['density@safety']!r}\n")
                f.flush()
                os.fsync(f.fileno())
        if self.sleep:
            time.sleep(self.sleep)
        m = truth(params["weight@safety"], params["density@safety"])
        if fidelity == "proxy":
            h = int(hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            m = {k: v + 0.01 * (h - 0.5) for k, v in m.items()}
        return {"metrics": m, "items": 100 if fidelity == "full" else 30}


if __name__ == "__main__":  # the kill test's child: python _search_synth.py OUT LOG TRIALS
    import sys

    from safeadapt.repair.search import search

    search(SPACE, sys.argv[1], trials=int(sys.argv[3]), evaluator=Synthetic(sys.argv[2], sleep=0.15), quiet=True)
