"""Study YAML: parsing (syntax errors as file:line), pydantic validation, `${var}` substitution,
`matrix` expansion into one stage per combination, input binding (stage names, lists, globs,
external paths), per-kind params validation, cycle detection and a deterministic topological order.
Every problem is a one-line `SafeAdaptError` raised before anything runs."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.provenance import stable_hash

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_OK = re.compile(r"^[^\s/\\*?\[\]]+$")


class PathInput(BaseModel):
    """An input that is an existing file/dir rather than a stage (fingerprinted into the key)."""

    model_config = ConfigDict(extra="forbid")
    path: str


InputSpec = Union[str, list[str], PathInput]


class StageSpec(BaseModel):
    """One entry under `stages:` (before matrix expansion)."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    inputs: dict[str, InputSpec] = {}
    params: dict[str, Any] = {}
    seed: int | str | None = None  # a string may be a `${var}` (e.g. a matrix over seeds)
    matrix: dict[str, list[Any]] | list[dict[str, Any]] | None = None
    description: str = ""
    threads: int | str | None = None  # torch threads the stage runs with (a `${var}` allowed)


class StudySpec(BaseModel):
    """The whole study file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    seed: int = 0
    description: str = ""
    plugins: list[str] = []
    seeds: list[int] = []  # replicate the study over these seeds (shared stages run once)
    vars: dict[str, Any] = {}
    profiles: dict[str, dict[str, Any]] = {}
    stages: dict[str, StageSpec]


@dataclass
class InputRef:
    """A bound input: an upstream stage name, or an external path."""

    stage: str | None = None
    path: Path | None = None

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage} if self.stage is not None else {"path": str(self.path)}


@dataclass
class Stage:
    """A concrete stage after expansion and validation."""

    name: str
    kind: str
    params: dict[str, Any]
    inputs: dict[str, InputRef]
    seed: int
    template: str  # the key under `stages:` it came from
    matrix_values: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    description: str = ""
    replicate: int | None = None  # the study seed of this copy (None: one run, or shared by all seeds)
    threads: int | None = None  # declared torch threads (None: the scheduler's cores // jobs)
    base_name: str = ""  # the name without the replicate suffix (names the stage's output dir)

    @property
    def upstream(self) -> list[str]:
        return [r.stage for r in self.inputs.values() if r.stage is not None]


@dataclass
class Study:
    """A validated study: stages in deterministic topological order."""

    name: str
    seed: int
    file: Path | None
    base_dir: Path
    stages: list[Stage]
    vars: dict[str, Any]
    profile: str | None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)  # replicate seeds (empty: one run with `seed`)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise SafeAdaptError(f"study {self.name!r} has no stage {name!r}; stages: {', '.join(s.name for s in self.stages)}")


# ----------------------------------------------------------------------------------------- parsing


def _where(file: Path | None, line: int | None) -> str:
    if file is None:
        return "study: " if line is None else f"study:{line}: "
    return f"{file}: " if line is None else f"{file}:{line}: "


def _parse_yaml(text: str, file: Path | None) -> tuple[Any, dict[str, int]]:
    """Load YAML; return (data, stage name -> 1-based line). Syntax errors name file:line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        ctx = getattr(e, "context", None)
        msg = f"{problem} ({ctx})" if ctx else str(problem)
        if mark is not None:
            loc = f"{file or 'study'}:{mark.line + 1}:{mark.column + 1}"
        else:
            loc = f"{file or 'study'}"
        raise SafeAdaptError(f"{loc}: YAML syntax error: {msg}") from None
    _check_duplicate_keys(node, file)
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "stages" and isinstance(v, yaml.MappingNode):
                for sk, _ in v.value:
                    if isinstance(sk, yaml.ScalarNode):
                        lines[str(sk.value)] = sk.start_mark.line + 1
    return data, lines


def _check_duplicate_keys(node: Any, file: Path | None) -> None:
    """YAML silently keeps the last of duplicate keys; a duplicate stage name would vanish."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    raise SafeAdaptError(f"{file or 'study'}:{k.start_mark.line + 1}: duplicate key {k.value!r}")
                seen.add(k.value)
            _check_duplicate_keys(v, file)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _check_duplicate_keys(v, file)


def _pydantic_msg(e: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        loc = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (+{len(e.errors()) - 3} more)" if len(e.errors()) > 3 else ""
    return "; ".join(parts) + more


# ------------------------------------------------------------------------------------ substitution


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
        return {substitute(k, env, where) if isinstance(k, str) else k: substitute(v, env, where) for k, v in obj.items()}
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


# ------------------------------------------------------------------------------------------ loading


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`--set name=value` pairs; values parse as YAML scalars/lists (`3`, `0.5`, `true`, `[a, b]`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SafeAdaptError(f"--set {item!r}: expected name=value")
        try:
            out[name.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[name.strip()] = value
    return out


def load_study(
    source: str | Path | dict[str, Any],
    *,
    overrides: dict[str, Any] | None = None,
    profile: str | None = None,
    seed: int | None = None,
    seeds: list[int] | None = None,
) -> Study:
    """Parse and fully validate a study (a YAML path, or an already-loaded dict)."""
    file: Path | None = None
    lines: dict[str, int] = {}
    if isinstance(source, dict):
        data: Any = source
        base_dir = Path.cwd()
    else:
        file = Path(source)
        if not file.is_file():
            raise SafeAdaptError(f"study file not found: {file}")
        data, lines = _parse_yaml(file.read_text(encoding="utf-8"), file)
        base_dir = file.resolve().parent
    top = _where(file, None)
    if not isinstance(data, dict):
        raise SafeAdaptError(f"{top}a study must be a mapping with 'name' and 'stages'")
    # plugins first: they register kinds that the validation below must know
    from safeadapt.study.registry import import_plugin
    from safeadapt.study.stages import STAGE_KINDS

    plugins = data.get("plugins") or []
    if isinstance(plugins, list):
        for mod in plugins:
            if isinstance(mod, str):
                import_plugin(mod, where=top)
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        line = None
        if len(err["loc"]) >= 2 and err["loc"][0] == "stages":
            line = lines.get(str(err["loc"][1]))
        raise SafeAdaptError(f"{_where(file, line)}{_pydantic_msg(e)}") from None
    if not spec.stages:
        raise SafeAdaptError(f"{top}the study has no stages")

    # variables: vars < profile < --set ; plus the seed
    env: dict[str, Any] = dict(spec.vars)
    if profile is not None:
        if profile not in spec.profiles:
            known = ", ".join(sorted(spec.profiles)) or "(none)"
            raise SafeAdaptError(f"{top}unknown profile {profile!r}; known: {known}")
        env.update(spec.profiles[profile])
    for k in overrides or {}:
        if k not in env and k != "seed":
            known = ", ".join(sorted(spec.vars)) or "(none)"
            raise SafeAdaptError(f"{top}--set {k}: not a variable of this study; vars: {known}")
    env.update({k: v for k, v in (overrides or {}).items() if k != "seed"})
    study_seed = seed if seed is not None else int((overrides or {}).get("seed", spec.seed))
    # seeds: the `seeds` argument (--seeds) > a single seed argument (--seed, --set seed=) > `seeds:`
    one_seed = seed is not None or "seed" in (overrides or {})
    if seeds is not None and one_seed:
        raise SafeAdaptError(f"{top}give either --seed or --seeds, not both")
    from safeadapt.study.replicates import merge_replicates, parse_seeds

    seed_list = parse_seeds(seeds if seeds is not None else (None if one_seed else spec.seeds), top)
    if len(seed_list) > 1:
        ordered = toposort(merge_replicates({sd: _expand(spec, env, sd, file, lines, base_dir) for sd in seed_list}), file)
        study_seed = seed_list[0]
    else:
        study_seed = seed_list[0] if seed_list else study_seed
        ordered = _expand(spec, env, study_seed, file, lines, base_dir)
    return Study(
        name=spec.name,
        seed=study_seed,
        file=file.resolve() if file else None,
        base_dir=base_dir,
        stages=ordered,
        vars={k: v for k, v in env.items() if k != "seed"},
        profile=profile,
        description=spec.description,
        raw=data,
        seeds=seed_list if len(seed_list) > 1 else [],
    )


def _expand(spec: StudySpec, env: dict[str, Any], study_seed: int, file: Path | None, lines: dict[str, int],
            base_dir: Path) -> list[Stage]:
    """Matrix expansion, input binding and params validation for one study seed; topological order."""
    from safeadapt.study.stages import STAGE_KINDS

    env = {**env, "seed": study_seed}

    # matrix expansion (inputs stay unresolved strings for now)
    expanded: list[tuple[Stage, dict[str, InputSpec]]] = []
    seen: dict[str, str] = {}
    for tmpl, st in spec.stages.items():
        where = f"{_where(file, lines.get(tmpl))}stage {tmpl!r}: "
        for combo in _combos(st.matrix, where):
            local = {**env, **combo}
            if combo and "${" not in tmpl:
                name = f"{tmpl}:{'-'.join(_fmt(v) for v in combo.values())}"
            else:
                name = str(substitute(tmpl, local, where))
            if not _NAME_OK.match(name):
                raise SafeAdaptError(f"{where}stage name {name!r} must be non-empty, without spaces, slashes, '*', '?', '[' or ']'")
            if name in seen:
                raise SafeAdaptError(f"{where}stage name {name!r} is produced twice (also by {seen[name]!r})")
            seen[name] = tmpl
            swhere = f"{_where(file, lines.get(tmpl))}stage {name!r}: "
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
            )
            expanded.append((stage, inputs_raw))

    names = [s.name for s, _ in expanded]
    name_set = set(names)
    for stage, inputs_raw in expanded:
        where = f"{_where(file, stage.line)}stage {stage.name!r}: "
        # kind
        if stage.kind not in STAGE_KINDS:
            try:
                STAGE_KINDS.resolve(stage.kind)
            except SafeAdaptError:
                raise SafeAdaptError(f"{where}unknown stage kind {stage.kind!r}; known: {', '.join(STAGE_KINDS.names())}") from None
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
                raise SafeAdaptError(f"{where}input {slot!r} must be a stage name, a list of stage names or {{path: ...}}")
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
                raise SafeAdaptError(f"{where}invalid params for kind {stage.kind!r}: {_pydantic_msg(e, 'params.')}") from None
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
                raise SafeAdaptError(f"{_where(file, line)}dependency cycle: {' -> '.join(cyc)}")
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
