"""Cache keys are users' caches: a fixed study (matrix, `${var}`s, fan-in glob, path input, stage
seed and threads, replicate seeds) must keep the keys and study.json stage entries pinned below
(computed before the schema/engine split). A key change must be deliberate: bump a kind version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safeadapt.core.provenance import stable_hash
from safeadapt.study import engine
from safeadapt.study.engine import plan_study, run_study
from safeadapt.study.schema import load_study
from safeadapt.study.stages import STAGE_KINDS

PINNED_KEYS = {
    "src": "fa42f47d7b68a96812dccf88121ae1be457e0f3c308c6845bf9981f96c518b65",
    "ext": "24b479ca2ed742ec98eb24cdf99bf8205090c10bdfa0593a3be99fc79afb0891",
    "add:1": "08b8c39fc833e319e8f52283c0e8c914b45790dbdb11c0e67a13e5ec12792317",
    "add:2": "bceddc6e13f2f7ad614b040c741ed73248ccefdc75a3c5b35ef43622368af00c",
    "const": "cba84e0f985303a3d93b04e5766ba42e180848229bb2ebecea5f2483213e324a",
    "fan": "189bf1d9ed3034d5b9c42161d0b603476a808d69771a483654b03b449dd931c1",
}
# seeds [7, 8]: seed 7's copies keep the one-seed keys; `const` (own seed, no inputs) is shared
PINNED_REPLICATE_KEYS = {
    "const": PINNED_KEYS["const"],
    **{f"{n}@s7": PINNED_KEYS[n] for n in ("src", "ext", "add:1", "add:2", "fan")},
    "src@s8": "79a4e3abd935aee8cef0e74076cf3b645391d277b74bce2a834b7a535170285a",
    "ext@s8": "43322d11b01ac10b2e05366a68995e7fa5de29c58f4621fb57651ff216850903",
    "add:1@s8": "7165531af34230d090d570fc05e69f761c19c53d303959fd6bb5c92acc55a7e7",
    "add:2@s8": "47df25b40213e6317a83498a8b150064348506e7f92f8d46e79dba799f77bde8",
    "fan@s8": "83de89ed1f71f88d85a5c9f04e9a96f990402cfc7216927ab84831dfa98aa847",
}
# stable_hash of the plans' study.json stage entries (external paths dropped)
PINNED_STAGE_ENTRIES = "eeb4d27b8d3c64323176493d6220083d31b7db660c6c610bb4593e3e2fef0be8"
PINNED_REPLICATE_ENTRIES = "d840cc14b617f0c2c713d2e39b37151d3f253852198dcad3d007e50da64b54da"


@pytest.fixture
def pin_kind(monkeypatch: pytest.MonkeyPatch):
    def pin(ctx) -> None:  # noqa: ANN001
        (ctx.out / "seed.txt").write_text(str(ctx.seed))

    pin.version = "2"  # type: ignore[attr-defined]
    STAGE_KINDS.register("test-keypin")(pin)
    monkeypatch.setattr(engine, "__version__", "0.1.0")  # keys fold in safeadapt's version
    yield pin
    STAGE_KINDS.unregister("test-keypin")


def _study(tmp_path: Path) -> dict[str, Any]:
    data = tmp_path / "data.txt"
    data.write_text("fixed bytes\n")
    return {
        "name": "keypin",
        "seed": 7,
        "vars": {"w": 3},
        "stages": {
            "src": {"kind": "test-keypin", "params": {"v": 1, "xs": [1, "a", True, None], "nested": {"b": 2.5}}},
            "ext": {"kind": "test-keypin", "inputs": {"f": {"path": str(data)}}},
            "add": {"kind": "test-keypin", "inputs": {"a": "src"}, "params": {"w": "${w}", "tag": "w=${w}"},
                    "matrix": {"s": [1, 2]}, "seed": "${s}"},
            "const": {"kind": "test-keypin", "seed": 5, "params": {"c": "${w}"}},  # shared by replicates
            "fan": {"kind": "test-keypin", "inputs": {"xs": "add:*", "e": "ext", "k": ["const"]}, "threads": 2},
        },
    }


def _entries_hash(plan: list[Any], out: Path) -> str:
    entries = [p.to_json(out) for p in plan]
    for e in entries:  # the external path differs per tmp dir; its fingerprint is in the key
        for ref in e["inputs"].values():
            ref.pop("path", None)
    return stable_hash(entries)


def test_cache_keys_are_pinned(tmp_path: Path, pin_kind) -> None:  # noqa: ANN001
    plan = plan_study(load_study(_study(tmp_path)), tmp_path / "out")
    keys = {p.stage.name: p.key for p in plan}
    assert keys == PINNED_KEYS
    assert _entries_hash(plan, tmp_path / "out") == PINNED_STAGE_ENTRIES

    rep = plan_study(load_study(_study(tmp_path), seeds=[7, 8]), tmp_path / "out")
    rkeys = {p.stage.name: p.key for p in rep}
    assert rkeys == PINNED_REPLICATE_KEYS
    assert _entries_hash(rep, tmp_path / "out") == PINNED_REPLICATE_ENTRIES

    # the version is folded in (so the monkeypatch above is what pins it)
    engine.__version__ = "0.0.0-other"  # restored by monkeypatch
    assert plan_study(load_study(_study(tmp_path)), tmp_path / "out")[0].key != keys["src"]


def test_study_json_shape_is_pinned(tmp_path: Path, pin_kind) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    plan = run_study(load_study(_study(tmp_path)), out, jobs=1)
    assert [p.status for p in plan] == ["done"] * 6
    record = json.loads((out / "study.json").read_text())
    assert list(record) == ["study", "file", "seed", "profile", "vars", "status", "started_unix", "wall_s",
                            "jobs", "threads_per_job", "stages", "provenance"]
    assert record["status"] == "complete" and record["vars"] == {"w": 3} and record["seed"] == 7
    fan = record["stages"][-1]
    assert list(fan) == ["name", "kind", "template", "inputs", "params", "seed", "threads", "key", "kind_version",
                         "dir", "status", "seconds", "run", "parallel_with"]
    assert fan["parallel_with"] == []  # jobs=1: nothing alongside
    assert fan["key"] == PINNED_KEYS["fan"] and fan["dir"] == f"stages/fan-{PINNED_KEYS['fan'][:12]}"
    marker = json.loads((out / fan["dir"] / "_stage.json").read_text())
    assert list(marker) == ["name", "kind", "key", "seed", "params", "inputs", "versions", "study", "provenance"]
    assert marker["provenance"]["config"]["threads"] == 2


def test_repair_and_eval_versions_fold_in_what_changes_their_numbers() -> None:
    """A repair that scores weights on data carries the calibration pass's version in its cache key,
    one that does not stays at "1"; an eval stage carries each judge's declared version."""
    from safeadapt.eval.judges.registry import JUDGES
    from safeadapt.repair.calibrate.rows import CALIBRATION_VERSION
    from safeadapt.study.stages import STAGE_KINDS

    v = lambda kind, params: STAGE_KINDS.version_of(kind, params, Path("."))  # noqa: E731
    calibrated = f"1;calibration={CALIBRATION_VERSION}"
    assert v("repair", {"method": "antidote", "parameters": {"mode": "wanda"}}) == calibrated
    assert v("repair", {"method": "antidote", "parameters": {"mode": "magnitude"}}) == "1"
    assert v("repair", {"method": "set_difference"}) == calibrated
    assert v("repair", {"method": "resta"}) == "1"
    refusal = JUDGES.get("refusal").version
    assert refusal != "1"
    assert v("eval", {"judge": "refusal", "suites": ["text-safety"]}) == f"1;refusal={refusal}"
    assert v("eval", {"judge": ["world", "refusal"], "suites": ["text-safety"]}) == f"1;refusal={refusal}"
