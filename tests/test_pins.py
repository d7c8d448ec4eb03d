"""Behaviour pins for refactors: every built-in study's stage cache keys (each profile) and every
built-in suite's and data set's output, hashed into tests/pins.json. `SAFEADAPT_REGEN_PINS=1` rewrites it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from safeadapt.core.provenance import stable_hash

ROOT = Path(__file__).resolve().parents[1]
PINS = Path(__file__).with_name("pins.json")
REGEN = os.environ.get("SAFEADAPT_REGEN_PINS") == "1"
STUDIES = {"demo": ROOT / "safeadapt/world/demo_study.yaml",
           **{f"recipe:{p.stem}": p for p in sorted((ROOT / "recipes").glob("*.yaml"))}}
# the recipes' keys fingerprint the shared benchmark files; they are pinned only where those exist
SHARED = ROOT.parent / "shared" / "data"


def _pins() -> dict[str, Any]:
    return json.loads(PINS.read_text()) if PINS.is_file() else {}


def _check(section: str, name: str, value: str) -> None:
    pins = _pins()
    if REGEN:
        pins.setdefault(section, {})[name] = value
        PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
        return
    assert name in pins.get(section, {}), f"no pin for {section}/{name} (SAFEADAPT_REGEN_PINS=1 writes one)"
    assert value == pins[section][name], f"{section}/{name} changed"


def _profiles(path: Path) -> list[str | None]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [None, *sorted(data.get("profiles") or {})]


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_study_keys_pinned(study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safeadapt.study import engine
    from safeadapt.study.engine import plan_study
    from safeadapt.study.schema import load_study

    if study.startswith("recipe:") and not SHARED.is_dir():
        pytest.skip(f"{SHARED} absent: the recipes' keys fingerprint its files")
    monkeypatch.setattr(engine, "__version__", "0.1.0")  # keys fold in safeadapt's version
    for profile in _profiles(STUDIES[study]):
        plan = plan_study(load_study(STUDIES[study], profile=profile), tmp_path / "out")
        keys = {p.stage.name: [p.stage.kind, p.key] for p in plan}
        assert len(keys) == len(plan) > 3
        _check("study_keys", f"{study}@{profile or 'default'}", stable_hash(keys))


def _file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _samples_hash(samples: list[Any], base: Path) -> str:
    out = []
    for s in samples:
        d = s.model_dump(mode="json")
        d["images"] = [_file_sha(Path(i)) if Path(i).is_file() else str(i) for i in s.images]
        d["metadata"] = {k: (str(Path(v).relative_to(base)) if isinstance(v, str) and v.startswith(str(base)) else v)
                         for k, v in d.get("metadata", {}).items()}
        out.append(d)
    return stable_hash(out)


SUITE_NAMES = ("text-safety", "jailbreak", "over-refusal", "mm-safety", "helpfulness")


@pytest.mark.parametrize("suite", SUITE_NAMES)
@pytest.mark.parametrize("limit", [None, 12])
def test_suite_samples_pinned(suite: str, limit: int | None, tmp_path: Path) -> None:
    from safeadapt.eval.suites.base import SuiteContext, get_suite
    from safeadapt.eval.types import DecodingConfig

    s = get_suite(suite)
    ctx = SuiteContext(backend=None, judge=None, decoding=DecodingConfig(), cache=None, work_dir=tmp_path,  # type: ignore[arg-type]
                       seed=0, limit=limit)
    items = s.prepare(s.default_samples(ctx), ctx)
    assert items
    _check("suite_samples", f"{suite}@{limit}", _samples_hash(items, tmp_path))


def test_builtin_sets_pinned() -> None:
    from safeadapt.data.builtin import builtin_names, load_builtin

    names = builtin_names()
    assert names == sorted(["harmful", "lookalike", "helpfulness-mc", "helpfulness-qa"])
    for name in names:
        for split in ("train", "test"):
            for seed in (0, 3):
                _check(
                    "builtin_sets",
                    f"{name}/{split}/{seed}",
                    _samples_hash(load_builtin(name, split=split, seed=seed), Path("/")),
                )
