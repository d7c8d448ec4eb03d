"""Study YAML loading: `load_study` (parse -> validate -> vars, profile, --set -> expand per seed;
helpers in `parsing` and `expand`, the types in `study.types`). Every problem is a one-line
`SafeAdaptError` before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.executors.resources import parse_slurm
from safeadapt.study.expand import expand_stages, substitute, toposort
from safeadapt.study.parsing import parse_yaml, pydantic_msg, where_prefix
from safeadapt.study.replicates import merge_replicates, parse_seeds
from safeadapt.study.types import Study, StudySpec

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
        data, lines = parse_yaml(file.read_text(encoding="utf-8"), file)
        base_dir = file.resolve().parent
    top = where_prefix(file, None)
    if not isinstance(data, dict):
        raise SafeAdaptError(f"{top}a study must be a mapping with 'name' and 'stages'")
    # plugins first: they register kinds that the validation below must know
    from safeadapt.study.registry import import_plugin

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
        raise SafeAdaptError(f"{where_prefix(file, line)}{pydantic_msg(e)}") from None
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
    seed_list = parse_seeds(seeds if seeds is not None else (None if one_seed else spec.seeds), top)
    if len(seed_list) > 1:
        ordered = toposort(
            merge_replicates({sd: expand_stages(spec, env, sd, file, lines, base_dir) for sd in seed_list}), file
        )
        study_seed = seed_list[0]
    else:
        study_seed = seed_list[0] if seed_list else study_seed
        ordered = expand_stages(spec, env, study_seed, file, lines, base_dir)
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
        slurm=parse_slurm(substitute(spec.slurm, env, top), top),
    )
