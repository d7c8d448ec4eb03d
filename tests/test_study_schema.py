"""Study YAML validation: every bad study is a one-line SafeAdaptError raised before anything
runs (unknown kind, missing input, cycle, bad params, YAML syntax), plus plugins and profiles."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.engine import plan_study
from safeadapt.study.schema import load_study, parse_overrides
from safeadapt.study.stages import STAGE_KINDS


def _study(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "study.yaml"
    f.write_text(textwrap.dedent(text))
    return f


def _err(path: Path, **kw: object) -> str:
    with pytest.raises(SafeAdaptError) as ei:
        load_study(path, **kw)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


class FakeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float
    steps: int = 10


@pytest.fixture
def fake_kind():
    def fake(ctx) -> None:  # noqa: ANN001
        (ctx.out / "p.txt").write_text(str(ctx.params))

    fake.params_model = FakeParams  # type: ignore[attr-defined]
    fake.version = "3"  # type: ignore[attr-defined]
    STAGE_KINDS.register("test-fake")(fake)
    yield fake
    STAGE_KINDS.unregister("test-fake")


def test_unknown_kind_lists_known(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, params: {function: "m:f"}}
          b: {kind: trian}
        """)
    msg = _err(f)
    assert msg.startswith(f"{f}:5: stage 'b': unknown stage kind 'trian'; known: ")
    for k in ("python", "sft", "dpo", "vl-adapt", "attack", "merge", "eval"):
        assert k in msg


def test_missing_input_names_stage_and_input(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, params: {function: "m:f"}}
          ev: {kind: python, inputs: {model: vl}, params: {function: "m:f"}}
        """)
    msg = _err(f)
    assert "stage 'ev'" in msg and "input 'model'" in msg and "'vl'" in msg and "stages: a, ev" in msg
    f2 = _study(tmp_path, """
        name: s
        stages:
          ev: {kind: python, inputs: {models: "merge:*"}, params: {function: "m:f"}}
        """)
    assert "pattern 'merge:*' matches no stage" in _err(f2)


def test_cycle_names_the_path(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        stages:
          root: {kind: python, params: {function: "m:f"}}
          a: {kind: python, inputs: {x: root, y: c}, params: {function: "m:f"}}
          b: {kind: python, inputs: {x: a}, params: {function: "m:f"}}
          c: {kind: python, inputs: {x: b}, params: {function: "m:f"}}
        """)
    msg = _err(f)
    assert "dependency cycle:" in msg
    cyc = msg.split("dependency cycle: ")[1].split(" -> ")
    assert cyc[0] == cyc[-1] and sorted(set(cyc)) == ["a", "b", "c"] and len(cyc) == 4
    f2 = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, inputs: {x: a}, params: {function: "m:f"}}
        """)
    assert "dependency cycle: a -> a" in _err(f2)


def test_invalid_params_per_kind(tmp_path: Path, fake_kind) -> None:  # noqa: ANN001
    f = _study(tmp_path, """
        name: s
        stages:
          t: {kind: test-fake, params: {lr: fast}}
        """)
    msg = _err(f)
    assert msg.startswith(f"{f}:4: stage 't': invalid params for kind 'test-fake': params.lr:")
    f2 = _study(tmp_path, """
        name: s
        stages:
          t: {kind: test-fake, params: {lr: 0.1, stpes: 3}}
        """)
    assert "params.stpes: unknown field" in _err(f2)
    # valid params are normalised (defaults filled) and the kind's version enters the key
    f3 = _study(tmp_path, """
        name: s
        stages:
          t: {kind: test-fake, params: {lr: 1}}
        """)
    study = load_study(f3)
    assert study.stages[0].params == {"lr": 1.0, "steps": 10}
    k1 = plan_study(study, tmp_path / "o")[0].key
    fake_kind.version = "4"
    assert plan_study(study, tmp_path / "o")[0].key != k1
    # built-in kinds validate too: an unknown attack recipe, a python function without module
    f5 = _study(tmp_path, """
        name: s
        stages:
          t: {kind: attack, params: {recipe: nshot, model: m}}
        """)
    assert "unknown attack recipe 'nshot'; known: " in _err(f5)
    # the built-in python kind checks its function spec
    f4 = _study(tmp_path, """
        name: s
        stages:
          p: {kind: python, params: {function: no_colon}}
        """)
    assert "params.function" in _err(f4)


def test_yaml_syntax_error_has_file_line(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, params: {function: "m:f"}
          b: {kind: python}
        """)
    msg = _err(f)
    assert msg.startswith(f"{f}:") and "YAML syntax error" in msg
    line = int(msg[len(str(f)) + 1 :].split(":")[0])
    assert line in (4, 5)


def test_structure_errors(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, inptus: {}, params: {function: "m:f"}}
        """)
    assert _err(f) == f"{f}:4: stages.a.inptus: unknown field"
    f = _study(tmp_path, "stages: {}\n")
    assert "name: Field required" in _err(f)
    f = _study(tmp_path, "- 1\n")
    assert "must be a mapping" in _err(f)
    assert "study file not found" in _err(tmp_path / "nope.yaml")
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, params: {function: "m:f", x: "${nope}"}}
        """)
    assert "stage 'a': undefined variable ${nope}" in _err(f)
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, params: {function: "m:f"}, matrix: {w: [1, 2]}}
          "a:${w}": {kind: python, params: {function: "m:f"}, matrix: {w: [2]}}
        """)
    assert "'a:2' is produced twice" in _err(f)
    f = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, params: {function: "m:f"}}
          b: {kind: python, params: {function: "m:f"}}
          a: {kind: python, params: {function: "m:g"}}
        """)
    assert _err(f) == f"{f}:6: duplicate key 'a'"
    f = _study(tmp_path, """
        name: s
        stages:
          "a[1]": {kind: python, params: {function: "m:f"}}
        """)
    assert "stage name 'a[1]' must be non-empty" in _err(f)


def test_vars_profiles_and_overrides(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        seed: 7
        vars: {steps: 100, tag: full}
        profiles: {quick: {steps: 5}}
        stages:
          "a-${tag}": {kind: python, params: {function: "m:f", steps: "${steps}", s: "seed=${seed} $${lit}"}}
        """)
    st = load_study(f).stages[0]
    assert (st.name, st.params["steps"], st.params["s"], st.seed) == ("a-full", 100, "seed=7 ${lit}", 7)
    st = load_study(f, profile="quick", overrides={"tag": "x"}, seed=1).stages[0]
    assert (st.name, st.params["steps"], st.params["s"], st.seed) == ("a-x", 5, "seed=1 ${lit}", 1)
    assert "unknown profile 'slow'; known: quick" in _err(f, profile="slow")
    assert "--set nope: not a variable" in _err(f, overrides={"nope": 1})
    assert parse_overrides(["a=3", "b=0.5", "c=[x, y]", "d=true", "e=hi"]) == {
        "a": 3,
        "b": 0.5,
        "c": ["x", "y"],
        "d": True,
        "e": "hi",
    }


def test_study_plugins_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "kinds.py").write_text(textwrap.dedent("""
        from safeadapt.study.stages import STAGE_KINDS

        @STAGE_KINDS.register("plug.hello")
        def hello(ctx):
            (ctx.out / "hi.txt").write_text("hi")
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        f = _study(tmp_path, """
            name: s
            plugins: [plugpkg.kinds]
            stages:
              h: {kind: plug.hello}
            """)
        assert load_study(f).stages[0].kind == "plug.hello"
        f3 = _study(tmp_path, """
            name: s
            plugins: [plugpkg.missing]
            stages:
              h: {kind: plug.hello}
            """)
        assert "plugin module 'plugpkg.missing' not found" in _err(f3)
        (pkg / "broken.py").write_text("import not_a_real_dependency_xyz\n")
        f4 = _study(tmp_path, """
            name: s
            plugins: [plugpkg.broken]
            stages:
              h: {kind: python, params: {function: "m:f"}}
            """)
        assert "plugin module 'plugpkg.broken' failed to import: No module named 'not_a_real_dependency_xyz'" in _err(
            f4
        )
    finally:
        STAGE_KINDS.unregister("plug.hello")
        sys.modules.pop("plugpkg.kinds", None)


def test_seed_sweep_via_matrix(tmp_path: Path) -> None:
    f = _study(tmp_path, """
        name: s
        seed: 9
        stages:
          base: {kind: python, params: {function: "m:f"}}
          rep: {kind: python, seed: "${s}", inputs: {x: base}, params: {function: "m:f"}, matrix: {s: [0, 1, 2]}}
        """)
    study = load_study(f)
    assert [(s.name, s.seed) for s in study.stages] == [("base", 9), ("rep:0", 0), ("rep:1", 1), ("rep:2", 2)]
    keys = [p.key for p in plan_study(study, tmp_path / "o")]
    assert len(set(keys)) == 4  # the seed is part of the key
    bad = _study(tmp_path, """
        name: s
        stages:
          a: {kind: python, seed: "x${s}", params: {function: "m:f"}, matrix: {s: [0]}}
        """)
    assert "seed must be an integer, got 'x0'" in _err(bad)


@pytest.mark.parametrize("field, value, want, bad, message", [
    ("threads", 2, 2, (("0", "0"), ("x", "'x'"), ("-2", "-2")), "threads must be a positive integer"),
    ("memory_gb", 2.5, 2.5, (("0", "0"), ("-1", "-1"), ("x", "'x'")), "memory_gb must be a positive number of GiB"),
])
def test_stage_threads_and_memory_are_validated(tmp_path: Path, field: str, value: float, want: float,
                                                bad: tuple, message: str) -> None:
    ok = _study(tmp_path, f"""
        name: s
        vars: {{v: {value}}}
        stages:
          a: {{kind: python, {field}: "${{v}}", params: {{function: "m:f"}}}}
          b: {{kind: python, params: {{function: "m:f"}}}}
        """)
    assert [getattr(s, field) for s in load_study(ok).stages] == [want, None]
    for raw, shown in bad:
        f = _study(tmp_path, f"""
            name: s
            stages:
              a: {{kind: python, {field}: {raw}, params: {{function: "m:f"}}}}
            """)
        msg = _err(f)
        assert "stage 'a'" in msg and f"{message}, got {shown}" in msg, msg
    if field == "threads":  # pydantic's own message for a non-integer
        f = _study(tmp_path, """
            name: s
            stages:
              a: {kind: python, threads: 1.5, params: {function: "m:f"}}
            """)
        assert "stages.a.threads" in _err(f)


def test_builtin_demo_study_validates(tmp_path: Path) -> None:
    """The demo study shipped with the world package loads, expands and plans (when present)."""
    from safeadapt.world.commands import DEMO_STUDY

    if not DEMO_STUDY.is_file():
        pytest.skip("safeadapt/world/demo_study.yaml not present")
    study = load_study(DEMO_STUDY, profile="quick")
    plan = plan_study(study, tmp_path / "out")
    names = [p.stage.name for p in plan]
    assert len(names) == len(set(names)) >= 5
    assert all(p.status == "to-run" and len(p.key) == 64 for p in plan)
    assert any(s.kind.startswith("world.") for s in study.stages)
