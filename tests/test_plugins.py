"""The plugin contract: an installed package (a `*.dist-info` with entry points of the group
`safeadapt.plugins`) adds a judge, a suite, a backend, a merge method and a stage kind, one file
each, with no other edit; `safeadapt plugins` lists them and they run through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_FILES = {
    "judge.py": '''
        from safeadapt.eval.judges.registry import JUDGES
        from safeadapt.eval.types import Judgement

        @JUDGES.register("toy-judge", backend=False, max_new_tokens=None)
        class ToyJudge:
            name = "toy-judge"

            def judge(self, items):
                return [Judgement(label="compliance" if it.response.startswith("Sure") else "refusal", score=1.0)
                        for it in items]

        @JUDGES.register("toy-llm", needs_backend=True, default_max_new_tokens=7)
        class ToyLLMJudge(ToyJudge):
            name = "toy-llm"

            def __init__(self, backend=None, decoding=None):
                self.backend, self.decoding = backend, decoding
        ''',
    "suite.py": '''
        from safeadapt.data.schema import Message, Sample
        from safeadapt.eval.suites.base import SUITES, JudgedRateSuite

        @SUITES.register("toy-suite")
        class ToySuite(JudgedRateSuite):
            metric = "asr"
            wants_label = "harmful"

            def default_samples(self, ctx):
                return [Sample(id=f"t{i}", messages=[Message(role="user", content=f"request {i}")], label="harmful",
                               category="toy") for i in range(4)]
        ''',
    "backend.py": '''
        from safeadapt.eval.backends.registry import BACKENDS

        @BACKENDS.register("toy-backend")
        class ToyBackend:
            fingerprint = "toy-backend-v1"
            supports_images = False

            def __init__(self, model, **options):
                self.model = model

            def generate(self, requests, decoding):
                return ["Sure." if r.messages[-1]["content"].endswith(("0", "2", "3")) else "No." for r in requests]

            def loglikelihood(self, requests):
                raise NotImplementedError
        ''',
    "method.py": '''
        from safeadapt.repair.merge.methods.base import TensorJob, merge_method

        @merge_method("toy-first", reference="the first model's tensor, as is")
        def toy_first(job: TensorJob):
            return job.tensors[0].clone()
        ''',
    "kind.py": '''
        from safeadapt.study.stages import STAGE_KINDS

        @STAGE_KINDS.register("toy.hello", version="1")
        def hello(ctx):
            (ctx.out / "hello.txt").write_text(f"hello {ctx.params.get('who', 'world')}")
        ''',
}


def _install(root: Path) -> None:
    """A package `toyplug` and its `.dist-info` (what `pip install` leaves) on a sys.path entry."""
    pkg = root / "toyplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, src in PLUGIN_FILES.items():
        (pkg / name).write_text(textwrap.dedent(src))
    info = root / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    eps = "\n".join(f"toy-{n[:-3]} = toyplug.{n[:-3]}" for n in PLUGIN_FILES)
    (info / "entry_points.txt").write_text(f"[safeadapt.plugins]\n{eps}\n")


def _cli(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "safeadapt", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    _install(root)
    return root


def test_installed_plugin_is_listed(site: Path, tmp_path: Path) -> None:
    r = _cli(["plugins"], site, tmp_path)
    assert r.returncode == 0, r.stderr
    rows = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    assert "toy-judge" in rows["judges"].split(", ") and "refusal" in rows["judges"].split(", ")
    assert "toy-suite" in rows["suites"].split(", ") and "text-safety" in rows["suites"].split(", ")
    assert "toy-backend" in rows["backends"].split(", ")
    assert "toy-first" in rows["merge methods"].split(", ") and "ties" in rows["merge methods"].split(", ")
    assert "toy.hello" in rows["stage kinds"].split(", ") and "world.eval" in rows["stage kinds"].split(", ")
    assert rows["plugins"].split(", ") == ["world", "toy-backend", "toy-judge", "toy-kind", "toy-method", "toy-suite"]


def test_plugin_suite_backend_and_judge_run(site: Path, tmp_path: Path) -> None:
    r = _cli(["eval", "m", "--backend", "toy-backend", "--suite", "toy-suite", "--judge", "toy-judge", "--out", "out"],
             site, tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())["suites"]["toy-suite"]
    assert (res["asr"]["k"], res["asr"]["n"]) == (3, 4)  # "Sure." to requests 0, 2 and 3; judged compliance


def test_plugin_judge_grades_and_declares_its_needs(site: Path, tmp_path: Path) -> None:
    rows = [{"prompt": "p", "completion": "Sure, here."}, {"prompt": "q", "completion": "No."}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = _cli(["judge", "rows.jsonl", "--judge", "toy-judge", "--out", "graded.jsonl"], site, tmp_path)
    assert r.returncode == 0, r.stderr
    graded = [json.loads(x) for x in (tmp_path / "graded.jsonl").read_text().splitlines()]
    assert [g["label"] for g in graded] == ["compliance", "refusal"]
    # needs_backend=True in its register line: the CLI asks for a judge model, as for the built-in LLM judges
    r = _cli(["judge", "rows.jsonl", "--judge", "toy-llm", "--out", "llm.jsonl"], site, tmp_path)
    assert r.returncode != 0 and "needs an LLM" in r.stderr and "Traceback" not in r.stderr
    code = ("from safeadapt.eval.judges.registry import judge_needs, llm_judges; "
            "print(judge_needs('toy-llm'), judge_needs('toy-judge'), 'toy-llm' in llm_judges())")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert out.split("} ")[0] + "}" == str(
        {"needs_backend": True, "default_max_new_tokens": 7, "takes_threshold": True}
    )
    assert out.strip().endswith("True")


def test_plugin_stage_kind_runs(site: Path, tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text("name: toy\nstages:\n  hi: {kind: toy.hello, params: {who: plugins}}\n")
    r = _cli(["run", "study.yaml", "--out", "run"], site, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    (stage,) = json.loads((tmp_path / "run" / "study.json").read_text())["stages"]
    assert (tmp_path / "run" / stage["dir"] / "hello.txt").read_text() == "hello plugins"


def test_plugin_merge_method_runs(site: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from safeadapt.io.tiny import build_tiny_llm

    a, b = build_tiny_llm(tmp_path / "a", seed=1), build_tiny_llm(tmp_path / "b", seed=2)
    (tmp_path / "merge.yaml").write_text(f"merge_method: toy-first\nmodels:\n  - model: {a}\n  - model: {b}\n")
    r = _cli(["merge", "merge.yaml", "--out", "merged"], site, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    merged = load_file(next((tmp_path / "merged").glob("*.safetensors")))
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert merged.keys() == first.keys() and all(bool((merged[k] == first[k]).all()) for k in first)
    assert not all(bool((merged[k] == second[k]).all()) for k in first)


# ------------------------------------------------------------------------------- the import graph
def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """safeadapt module -> the safeadapt modules it imports, every import statement counted (those
    inside functions too): `from a.b import c` is an edge to a.b.c when that is a module, else to a.b."""
    import ast

    files = {_module_of(p): p for p in (ROOT / "safeadapt").rglob("*.py")}

    def owner(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(o for a in node.names if (o := owner(a.name)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for a in node.names:
                    o = f"{base}.{a.name}" if f"{base}.{a.name}" in files else owner(base)
                    if o:
                        edges.add(o)
        edges.discard(mod)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_and_the_world_is_a_plugin() -> None:
    graph = import_graph()
    assert len(graph) > 150 and "safeadapt.repair.calibrate.child" in graph["safeadapt.repair.calibrate"]
    assert cycles(graph) == []
    outside = {m: sorted(e for e in edges if e.startswith("safeadapt.world"))
               for m, edges in graph.items() if not m.startswith("safeadapt.world")}
    assert {m: e for m, e in outside.items() if e} == {}
