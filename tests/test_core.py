import json

import pytest

from safeadapt.core.atomic import atomic_dir, atomic_write_json
from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.jsonl import JsonlCheckpoint, read_jsonl_records
from safeadapt.core.registry import Registry


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "a.txt").write_text("x")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(SafeAdaptError, match="exists"):
        with atomic_dir(target):
            pass
    with atomic_dir(target, overwrite=True) as d:
        (d / "b").write_text("y")
    assert (target / "b").read_text() == "y"


def test_jsonl_checkpoint_drops_torn_tail_and_resumes(tmp_path):
    p = tmp_path / "g.jsonl"
    ck = JsonlCheckpoint(p)
    ck.extend([{"key": "a", "v": 1}, {"key": "b", "v": 2}])
    with open(p, "ab") as f:
        f.write(b'{"key": "c", "v"')  # torn write from a kill
    ck2 = JsonlCheckpoint(p)
    assert ck2.done == {"a", "b"}
    ck2.extend([{"key": "b", "v": 99}, {"key": "c", "v": 3}])
    recs = read_jsonl_records(p)
    assert [r["key"] for r in recs] == ["a", "b", "c"]
    assert recs[1]["v"] == 2


def test_registry_unknown_name_lists_known():
    r: Registry[int] = Registry("widget")
    r.register("a")(1)
    with pytest.raises(SafeAdaptError, match="unknown widget 'z'; known: a"):
        r.get("z")


def test_atomic_write_json(tmp_path):
    p = atomic_write_json(tmp_path / "x" / "r.json", {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]


def test_nested_progress_is_transient_and_outer_is_not(monkeypatch):
    """An eval's bars inside a study stage vanish when done; the study's own bar stays."""
    from safeadapt.core import runtime

    monkeypatch.delenv("SAFEADAPT_NO_PROGRESS", raising=False)
    with runtime.make_progress() as outer:
        with runtime.make_progress() as inner:
            assert (outer.live.transient, inner.live.transient) == (False, True)
        with runtime.make_progress(transient=True) as again:
            assert again.live.transient
    assert runtime._LIVE_DEPTH == 0
    with runtime.make_progress() as alone:
        assert not alone.live.transient
