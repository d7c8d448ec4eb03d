"""Multi-process training for the train stage kinds: given `launch: {config: ACCELERATE.yaml}`,
a stage writes a job file and runs `accelerate launch --config_file ... -m
safeadapt.train.launch_entry JOB.json` (DeepSpeed ZeRO-2/3, FSDP or DDP, as the config says;
recipes/accelerate/ ships them). Rank 0 writes the checkpoint into the stage's `out/model`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext


class LaunchSpec(BaseModel):
    """`config`: an accelerate config file (relative to the study file); `num_processes` and
    `main_process_port` override it (the port defaults to a free one)."""

    model_config = ConfigDict(extra="forbid")
    config: str
    num_processes: int | None = None
    main_process_port: int | None = None

    @field_validator("num_processes")
    @classmethod
    def _pos(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v


def accelerate_bin() -> str:
    """The `accelerate` executable of this Python environment (else the one on PATH)."""
    here = Path(sys.executable).parent / "accelerate"
    found = str(here) if here.exists() else shutil.which("accelerate")
    if not found:
        raise SafeAdaptError("multi-process training needs `accelerate` (pip install accelerate)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_command(spec: LaunchSpec, config: Path, job: Path) -> list[str]:
    cmd = [accelerate_bin(), "launch", "--config_file", str(config)]
    if spec.num_processes is not None:
        cmd += ["--num_processes", str(spec.num_processes)]
    cmd += ["--main_process_port", str(spec.main_process_port or _free_port())]
    return cmd + ["-m", "safeadapt.train.launch_entry", str(job)]


def launch_training(ctx: StageContext, spec: LaunchSpec, job: dict[str, Any]) -> Path:
    """Run one training job under `accelerate launch`; its log is kept at scratch/launch.log and
    its last error line reported on failure. Returns the model dir (`out/model`)."""
    config = ctx.path(spec.config)
    if not config.is_file():
        raise SafeAdaptError(f"stage {ctx.name!r}: accelerate config not found: {config}")
    out = ctx.out / "model"
    job = {**job, "out": str(out)}
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    job_file = ctx.scratch / "job.json"
    job_file.write_text(json.dumps(job, indent=1))
    pkg_root = str(Path(__file__).resolve().parents[3])  # the safeadapt checkout, first on the path
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in (pkg_root, os.environ.get("PYTHONPATH")) if x),
               TOKENIZERS_PARALLELISM="false")
    log = ctx.scratch / "launch.log"
    with open(log, "w") as fh:
        rc = subprocess.run(launch_command(spec, config, job_file), stdout=fh, stderr=subprocess.STDOUT, env=env,
                            cwd=ctx.scratch).returncode
    if rc != 0:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
        last = (errs or lines or ["(no output)"])[-1].strip()
        raise SafeAdaptError(f"stage {ctx.name!r}: accelerate launch exited {rc}: {last} (log: {log})")
    if not (out / "config.json").exists():
        raise SafeAdaptError(f"stage {ctx.name!r}: accelerate launch wrote no model at {out} (log: {log})")
    return out
