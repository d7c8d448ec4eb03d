"""Study expansion: `${var}` substitution, `matrix` expansion into one stage per combination,
input binding (stage names, lists, globs, external paths), per-kind params validation, and the
deterministic topological order with cycle detection (`toposort`)."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import stable_hash
from safeadapt.study.executors.resources import parse_gpus, parse_slurm
from safeadapt.study.parsing import pydantic_msg, where_prefix
from safeadapt.study.types import InputRef, InputSpec, PathInput, Stage, StudySpec

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_OK = re.compile(r"^[^\s/\\*?\[\]]+$")


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    if v is None:
        return "null"
    return stable_hash(v)[:8]


def substitute(obj: Any, env: dict[str, Any], where: str) -> Any:
    """Replace `${name}` in strings (recursively). A string that is exactly `${name}` takes the
    value with its type; `$${` is a literal `${`. Undefined names are an error naming `where`."""

    def one(s: str) -> Any:
        if "${" not in s:
            return s
        m = _VAR.fullmatch(s)
        if m:
            if m.group(1) not in env:
                _undefined(m.group(1))
            return env[m.group(1)]
        protected = s.replace("$${", "\x00")

        def rep(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                _undefined(m.group(1))
            return _fmt(env[m.group(1)])

        return _VAR.sub(rep, protected).replace("\x00", "${")

    def _undefined(name: str) -> None:
        known = ", ".join(sorted(env)) or "(none)"
        raise SafeAdaptError(f"{where}undefined variable ${{{name}}} (defined: {known})")

    if isinstance(obj, str):
        return one(obj)
    if isinstance(obj, list):
        return [substitute(x, env, where) for x in obj]
    if isinstance(obj, dict):
        return {
            substitute(k, env, where) if isinstance(k, str) else k: substitute(v, env, where) for k, v in obj.items()
        }
    return obj


def _combos(matrix: dict[str, list[Any]] | list[dict[str, Any]] | None, where: str) -> list[dict[str, Any]]:
    if matrix is None:
        return [{}]
    if isinstance(matrix, list):
        if not matrix:
            raise SafeAdaptError(f"{where}matrix is an empty list")
        return [dict(c) for c in matrix]
    if not matrix:
        raise SafeAdaptError(f"{where}matrix is empty")
    for k, vals in matrix.items():
        if not vals:
            raise SafeAdaptError(f"{where}matrix variable {k!r} has no values")
    keys = list(matrix)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(matrix[k] for k in keys))]


def expand_stages(spec: StudySpec, env: dict[str, Any], study_seed: int, file: Path | None, lines: dict[str, int],
            base_dir: Path) -> list[Stage]:
    """Matrix expansion, input binding and params validation for one study seed; topological order."""
    from safeadapt.study.stages import STAGE_KINDS

    env = {**env, "seed": study_seed}

    # matrix expansion (inputs stay unresolved strings for now)
    expanded: list[tuple[Stage, dict[str, InputSpec]]] = []
    seen: dict[str, str] = {}
    for tmpl, st in spec.stages.items():
        where = f"{where_prefix(file, lines.get(tmpl))}stage {tmpl!r}: "
        for combo in _combos(st.matrix, where):
            local = {**env, **combo}
            if combo and "${" not in tmpl:
                name = f"{tmpl}:{'-'.join(_fmt(v) for v in combo.values())}"
            else:
                name = str(substitute(tmpl, local, where))
            if not _NAME_OK.match(name):
                raise SafeAdaptError(
                    f"{where}stage name {name!r} must be non-empty, without spaces, slashes, '*', '?', '[' or ']'"
                )
            if name in seen:
                raise SafeAdaptError(f"{where}stage name {name!r} is produced twice (also by {seen[name]!r})")
            seen[name] = tmpl
            swhere = f"{where_prefix(file, lines.get(tmpl))}stage {name!r}: "
            inputs_raw: dict[str, InputSpec] = {}
            for slot, v in st.inputs.items():
                if isinstance(v, PathInput):
                    inputs_raw[slot] = PathInput(path=str(substitute(v.path, local, swhere)))
                else:
                    inputs_raw[slot] = substitute(v, local, swhere)
            stage_seed = study_seed
            if st.seed is not None:
                raw_seed = substitute(st.seed, local, swhere)
                try:
                    stage_seed = int(raw_seed)
                except (TypeError, ValueError):
                    raise SafeAdaptError(f"{swhere}seed must be an integer, got {raw_seed!r}") from None
            threads = None
            if st.threads is not None:
                raw_threads = substitute(st.threads, local, swhere)
                ok = isinstance(raw_threads, int) and not isinstance(raw_threads, bool) or str(raw_threads).isdigit()
                threads = int(raw_threads) if ok else 0
                if threads < 1:
                    raise SafeAdaptError(f"{swhere}threads must be a positive integer, got {raw_threads!r}")
            memory_gb = None
            if st.memory_gb is not None:
                raw_mem = substitute(st.memory_gb, local, swhere)
                try:
                    memory_gb = float(raw_mem) if not isinstance(raw_mem, bool) else -1.0
                except (TypeError, ValueError):
                    memory_gb = -1.0
                if not memory_gb > 0 or memory_gb == float("inf"):
                    raise SafeAdaptError(f"{swhere}memory_gb must be a positive number of GiB, got {raw_mem!r}")
            gpus = parse_gpus(substitute(st.gpus, local, swhere), swhere)
            slurm = parse_slurm(substitute(st.slurm, local, swhere), swhere)
            stage = Stage(
                name=name,
                kind=st.kind,
                params=substitute(st.params, local, swhere),
                inputs={},
                seed=stage_seed,
                template=tmpl,
                matrix_values=combo,
                line=lines.get(tmpl),
                description=st.description,
                threads=threads,
                memory_gb=memory_gb,
                gpus=gpus,
                slurm=slurm,
            )
            expanded.append((stage, inputs_raw))

    names = [s.name for s, _ in expanded]
    name_set = set(names)
    for stage, inputs_raw in expanded:
        where = f"{where_prefix(file, stage.line)}stage {stage.name!r}: "
        # kind
        if stage.kind not in STAGE_KINDS:
            try:
                STAGE_KINDS.resolve(stage.kind)
            except SafeAdaptError:
                raise SafeAdaptError(
                    f"{where}unknown stage kind {stage.kind!r}; known: {', '.join(STAGE_KINDS.names())}"
                ) from None
        # inputs
        for slot, v in inputs_raw.items():
            if isinstance(v, PathInput):
                p = Path(v.path).expanduser()
                p = p if p.is_absolute() else base_dir / p
                if not p.exists():
                    raise SafeAdaptError(f"{where}input {slot!r} path not found: {p}")
                stage.inputs[slot] = InputRef(path=p)
                continue
            if not isinstance(v, (str, list)) or (isinstance(v, list) and not all(isinstance(x, str) for x in v)):
                raise SafeAdaptError(
                    f"{where}input {slot!r} must be a stage name, a list of stage names or {{path: ...}}"
                )
            fan = isinstance(v, list) or "*" in v
            pats = v if isinstance(v, list) else [v]
            matched: list[str] = []
            for pat in pats:
                if "*" in pat or "?" in pat:
                    hits = [n for n in names if n != stage.name and fnmatch.fnmatchcase(n, pat)]
                    if not hits:
                        raise SafeAdaptError(f"{where}input {slot!r} pattern {pat!r} matches no stage")
                    matched += [h for h in hits if h not in matched]
                elif pat not in name_set:
                    raise SafeAdaptError(
                        f"{where}input {slot!r} names missing stage {pat!r}; stages: {', '.join(names)}"
                    )
                elif pat not in matched:
                    matched.append(pat)
            if fan:
                for m in matched:
                    stage.inputs[f"{slot}[{m}]"] = InputRef(stage=m)
            else:
                stage.inputs[slot] = InputRef(stage=matched[0])
        # params
        fn = STAGE_KINDS.resolve(stage.kind)
        model = getattr(fn, "params_model", None)
        if model is not None:
            try:
                stage.params = model.model_validate(stage.params).model_dump(mode="json")
            except ValidationError as e:
                raise SafeAdaptError(
                    f"{where}invalid params for kind {stage.kind!r}: {pydantic_msg(e, 'params.')}"
                ) from None
        try:
            json.dumps(stage.params)
        except (TypeError, ValueError):
            raise SafeAdaptError(f"{where}params must be plain data (strings, numbers, lists, mappings)") from None

    return toposort([s for s, _ in expanded], file)


def toposort(stages: list[Stage], file: Path | None = None) -> list[Stage]:
    """Deterministic topological order (ties broken by definition order); cycles are an error
    naming the cycle path."""
    by_name = {s.name: s for s in stages}
    # cycle detection by DFS, in definition order, to name the path
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for u in by_name[n].upstream:
            if state.get(u) == 1:
                cyc = stack[stack.index(u) :] + [u]
                cyc.reverse()  # show data-flow direction: producer -> consumer
                line = by_name[u].line
                raise SafeAdaptError(f"{where_prefix(file, line)}dependency cycle: {' -> '.join(cyc)}")
            if state.get(u) is None:
                visit(u)
        stack.pop()
        state[n] = 2

    for s in stages:
        if state.get(s.name) is None:
            visit(s.name)
    order_idx = {s.name: i for i, s in enumerate(stages)}
    indeg = {s.name: len(set(s.upstream)) for s in stages}
    children: dict[str, list[str]] = {s.name: [] for s in stages}
    for s in stages:
        for u in set(s.upstream):
            children[u].append(s.name)
    import heapq

    ready = [(order_idx[n], n) for n, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    out: list[Stage] = []
    while ready:
        _, n = heapq.heappop(ready)
        out.append(by_name[n])
        for c in children[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(ready, (order_idx[c], c))
    return out
