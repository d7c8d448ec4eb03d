"""What a stage asks of a cluster: the `gpus:` and `slurm:` fields of a study (validated here, at
load time) and the sbatch resources of a stage (threads -> CPUs, memory_gb, gpus or its `launch:`
processes, the merged `slurm:` blocks). None of it enters a stage's cache key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from safeadapt.core.errors import SafeAdaptError

_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # SLURM's MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]


class SlurmSpec(BaseModel):
    """A `slurm:` block (per study or per stage): `partition`, `time` (minutes, or a SLURM time
    such as "2-00:00:00"), `account`, `qos`, `constraint`, `cpus_per_task` (else the stage's
    threads), `setup` (shell lines run in the job before the stage, e.g. `module load cuda`) and
    `sbatch` (extra sbatch options, e.g. `--exclusive`, `--mail-type=END`)."""

    model_config = ConfigDict(extra="forbid")
    partition: str | None = None
    time: int | str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    cpus_per_task: int | None = None
    setup: list[str] = []
    sbatch: list[str] = []

    @field_validator("time")
    @classmethod
    def _time(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, bool) or isinstance(v, int) and v < 1:
            raise ValueError("must be a positive number of minutes or a SLURM time like 2-00:00:00")
        if isinstance(v, str) and not _TIME.match(v.strip()):
            raise ValueError(f"{v!r} is not a SLURM time (minutes, HH:MM:SS or D-HH:MM:SS)")
        return v.strip() if isinstance(v, str) else v

    @field_validator("sbatch")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        for opt in v:
            if not str(opt).strip().startswith("--") or " " in str(opt).strip():
                raise ValueError(f"{opt!r}: each sbatch option is one '--name[=value]'")
        return [str(o).strip() for o in v]

    @field_validator("cpus_per_task")
    @classmethod
    def _cpus(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v


def parse_slurm(raw: Any, where: str, names: dict[str, str] | None = None) -> dict[str, Any]:
    """A validated `slurm:` block as a plain dict of the keys it sets ({} when absent). Errors name
    `slurm.<field>`, or `names[field]` (the command line's flags)."""
    if raw is None:
        return {}
    try:
        return SlurmSpec.model_validate(raw).model_dump(exclude_unset=True)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(x) for x in err["loc"]]
        field = names.get(loc[0], loc[0]) if names and loc else "slurm" + "".join(f".{x}" for x in loc)
        raise SafeAdaptError(f"{where}{field}: {err['msg']}") from None


def parse_gpus(raw: Any, where: str) -> int | None:
    """`gpus:` after `${var}` substitution: a whole number >= 0 (None when absent)."""
    if raw is None:
        return None
    ok = isinstance(raw, int) and not isinstance(raw, bool) or str(raw).isdigit()
    if not ok:
        raise SafeAdaptError(f"{where}gpus must be a whole number >= 0, got {raw!r}")
    return int(raw)


def launch_processes(stage: Any, base_dir: Path) -> int | None:
    """The processes a stage's `launch:` (accelerate) starts: its `num_processes`, else the
    config file's; None without `launch:`."""
    launch = (stage.params or {}).get("launch") if isinstance(stage.params, dict) else None
    if not isinstance(launch, dict):
        return None
    n = launch.get("num_processes")
    if n is None and launch.get("config"):
        import yaml

        cfg = Path(str(launch["config"])).expanduser()
        cfg = cfg if cfg.is_absolute() else base_dir / cfg
        try:
            n = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("num_processes")
        except (OSError, yaml.YAMLError, AttributeError):
            n = None
    try:
        return max(1, int(n)) if n is not None else 1
    except (TypeError, ValueError):
        return 1


def merged_slurm(study: Any, stage: Any, cli: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stage's SLURM settings: the study's `slurm:` < the stage's `slurm:` < the command line
    (`--slurm-*`); `setup` and `sbatch` lines add up in that order."""
    out: dict[str, Any] = {}
    for block in (getattr(study, "slurm", None) or {}, getattr(stage, "slurm", None) or {}, cli or {}):
        for k, v in block.items():
            if v is None:
                continue
            out[k] = (out.get(k) or []) + list(v) if k in ("setup", "sbatch") else v
    return out


def sbatch_resources(study: Any, stage: Any, cli: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the stage's job asks for, as submitit's SlurmExecutor parameters: cpus_per_task
    (`slurm.cpus_per_task`, else `threads`), mem (`memory_gb`, in MiB), gpus_per_node (`gpus`, else the
    processes of `launch:`), partition, time (minutes or a SLURM time), account, qos, constraint,
    setup lines and additional_parameters (the extra sbatch options)."""
    s = merged_slurm(study, stage, cli)
    res: dict[str, Any] = {"job_name": f"safeadapt:{study.name}:{stage.name}", "nodes": 1, "ntasks_per_node": 1}
    cpus = s.get("cpus_per_task") or getattr(stage, "threads", None)
    if cpus:
        res["cpus_per_task"] = int(cpus)
    if getattr(stage, "memory_gb", None):
        res["mem"] = f"{max(1, round(float(stage.memory_gb) * 1024))}M"
    gpus = getattr(stage, "gpus", None)
    if gpus is None:
        gpus = launch_processes(stage, study.base_dir)
    if gpus:
        res["gpus_per_node"] = int(gpus)
    for k in ("partition", "account", "qos", "constraint"):
        if s.get(k):
            res[k] = str(s[k])
    if s.get("time") is not None:
        res["time"] = s["time"]  # else the partition's default limit
    if s.get("setup"):
        res["setup"] = list(s["setup"])
    extra: dict[str, Any] = {}
    for opt in s.get("sbatch") or []:
        name, sep, value = opt[2:].partition("=")
        extra[name.replace("-", "_")] = value if sep else True
    if extra:
        res["additional_parameters"] = extra
    return res


def describe(res: dict[str, Any]) -> dict[str, str]:
    """The dry-run columns of a stage's resources (plain strings, '-' where SLURM's default applies)."""
    t = res.get("time")
    extra = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}")
                     for k, v in (res.get("additional_parameters") or {}).items())
    mem = res.get("mem")
    return {
        "partition": str(res.get("partition") or "-"),
        "time": "-" if t is None else (f"{t} min" if isinstance(t, int) else str(t)),
        "cpus": str(res.get("cpus_per_task") or "-"),
        "mem": f"{int(mem[:-1]) / 1024:g}G" if mem else "-",
        "gpus": str(res.get("gpus_per_node") or "-"),
        "other": " ".join(x for x in (
            f"account={res['account']}" if res.get("account") else "",
            f"qos={res['qos']}" if res.get("qos") else "",
            f"constraint={res['constraint']}" if res.get("constraint") else "",
            extra,
            f"setup: {len(res['setup'])} line(s)" if res.get("setup") else "",
        ) if x) or "-",
    }
