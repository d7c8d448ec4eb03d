"""The `slurm` executor: each ready stage becomes one SLURM job, submitted through submitit with
the stage's resources (resources.py); jobs write into the shared study directory. Job ids are
recorded in study.json, so a re-run after the driver died waits for the jobs still running."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.executors.base import Outcome, setup_worker_threads
from safeadapt.study.executors.resources import sbatch_resources

LIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
        "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
LOG_TAIL = 15  # lines of a failed job's log printed


def poll_seconds() -> float:
    """Seconds between two `squeue` calls while jobs run ($SAFEADAPT_SLURM_POLL_S, default 10)."""
    try:
        return max(0.2, float(os.environ.get("SAFEADAPT_SLURM_POLL_S") or 10))
    except ValueError:
        return 10.0


def job_states(ids: list[str]) -> dict[str, str] | None:
    """SLURM state of each job id that squeue still knows (finished jobs drop out after MinJobAge);
    None when squeue cannot be asked (then nothing is taken as ended)."""
    if not ids:
        return {}
    try:
        r = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T", "-j", ",".join(ids)],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0 and "Invalid job id" not in r.stderr:
        return None
    out: dict[str, str] = {}
    for line in r.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid:
            out[jid] = state.strip()
    return out


def previous_jobs(study_json: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(stage name, cache key) -> the SLURM job an earlier run of this study dir recorded for it
    (with the stage's dir and status in that run)."""
    try:
        rec = json.loads(study_json.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for s in rec.get("stages") or []:
        job = s.get("job") or {}
        if job.get("executor") == "slurm" and job.get("id"):
            out[(str(s.get("name")), str(s.get("key")))] = {**job, "dir": s.get("dir"), "status": s.get("status")}
    return out


def live_jobs(out_dir: Path) -> list[tuple[str, str]]:
    """(stage, job id) of the jobs an earlier `--executor slurm` run of `out_dir` left pending or
    running ([] without recorded jobs, or when squeue cannot tell)."""
    prev = {k: j for k, j in previous_jobs(out_dir / "study.json").items() if j["status"] not in ("done", "cached")}
    if not prev or shutil.which("squeue") is None:
        return []
    states = job_states([str(j["id"]) for j in prev.values()]) or {}
    return [(name, str(j["id"])) for (name, _), j in prev.items() if states.get(str(j["id"])) in LIVE]


def log_tail(paths: list[Path], n: int = LOG_TAIL) -> list[str]:
    """The last `n` non-empty lines of each existing log (submitit's own INFO lines left out), each
    block headed by its path."""
    out: list[str] = []
    for p in paths:
        try:
            lines = [ln for ln in p.read_text(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith("submitit INFO")]
        except OSError:
            continue
        if lines:
            out += [f"--- {p}"] + lines[-n:]
    return out


def job_parameters(study: Any, stage: Any, cli: dict[str, Any] | None = None) -> dict[str, Any]:
    """submitit SlurmExecutor parameters of a stage's job: its `sbatch_resources`, this checkout first
    on the job's PYTHONPATH (the job runs the driver's code with the driver's interpreter), and no
    time limit unless one is set (the partition's default, not submitit's 5 minutes), and the CPUs
    restated to the job's srun."""
    res = sbatch_resources(study, stage, cli)
    pkg_root = str(Path(__file__).resolve().parents[3])
    res["setup"] = [f"export PYTHONPATH={shlex.quote(pkg_root)}${{PYTHONPATH:+:$PYTHONPATH}}"] + res.get("setup", [])
    res["time"] = res.get("time")
    if res.get("cpus_per_task"):  # srun inside the job does not inherit it since SLURM 22.05: say it again
        res["srun_args"] = [f"--cpus-per-task={res['cpus_per_task']}"]
    return res


def run_job(plugins: list[str], fn: Callable[..., Outcome], args: tuple[Any, ...]) -> Outcome:
    """What a job runs on its node: the stage's torch threads (declared, capped at the job's CPUs;
    else the job's CPUs), no progress bars, the study's plugins, SIGTERM (scancel) unwinding the
    stage like Ctrl-C, then `fn(*args)` with the threads as its last argument."""
    cpus = next((int(os.environ[v]) for v in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE")
                 if os.environ.get(v, "").isdigit()), 0) or len(os.sched_getaffinity(0))
    declared = args[-1]
    threads = min(int(declared), cpus) if declared else cpus

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    setup_worker_threads(threads, plugins)
    return fn(*args[:-1], threads)


@dataclass
class _Job:
    job: Any  # submitit.SlurmJob
    p: Any
    gone_since: float | None = None  # first poll that found the job ended with no result yet
    state: str = "PENDING"


@dataclass
class SlurmExecutor:
    """Submits each stage as one job (sbatch through submitit, logs and pickles in DIR/slurm/),
    watches them with one thread (a result file, else `squeue` every `poll_seconds()`), and on
    `close(kill=True)` cancels those still running (scancel). A stage whose job an earlier,
    killed run left running (`previous_jobs`) is waited for instead of submitted again.

    `record()` is called after each submission (the engine writes study.json: the job id is on
    disk before the job can finish); `say(text)` prints (a failed job's log tail)."""

    study: Any
    out_dir: Path
    cli: dict[str, Any] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    record: Callable[[], None] = lambda: None
    say: Callable[[str], None] = print
    name: str = "slurm"

    def __post_init__(self) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise SafeAdaptError("--executor slurm needs submitit (pip install submitit)") from None
        if shutil.which("sbatch") is None or shutil.which("squeue") is None:
            raise SafeAdaptError("--executor slurm needs the SLURM commands (sbatch, squeue) on PATH: run it on a "
                                 "login node of the cluster")
        self.folder = self.out_dir / "slurm"
        self.running: dict[cf.Future, _Job] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.previous = previous_jobs(self.out_dir / "study.json")
        unfinished = {k: j for k, j in self.previous.items() if j["status"] not in ("done", "cached")}
        states = job_states([j["id"] for j in unfinished.values()]) or {}
        self.reattach = {k: j for k, j in unfinished.items() if states.get(str(j["id"])) in LIVE}
        self.watcher = threading.Thread(target=self._watch, name="safeadapt-slurm-watch", daemon=True)

    def keep_dirs(self) -> set[str]:
        """Stage dir names whose (still running) job may have a temp dir in stages/ to keep."""
        return {Path(str(j["dir"])).name for j in self.reattach.values() if j.get("dir")}

    def adopt(self, plan: list[Any]) -> None:
        """Before the run's first study.json write: a cached stage keeps the job that built it, a
        stage whose job still runs gets that job (so a driver killed again cannot lose its id)."""
        for p in plan:
            at = (p.stage.name, p.key)
            old = self.reattach.get(at) if p.status != "cached" else self.previous.get(at)
            if old is not None:  # (the last run's study.json: no other run can have built it since)
                p.extra["job"] = {k: old[k] for k in ("executor", "id", "log") if k in old}

    def submit(self, p: Any, fn: Callable[..., Outcome], args: tuple[Any, ...]) -> cf.Future:
        import submitit

        fut: cf.Future = cf.Future()
        fut.set_running_or_notify_cancel()
        old = self.reattach.pop((p.stage.name, p.key), None)
        if old is not None:
            job = submitit.SlurmJob(folder=self.folder, job_id=str(old["id"]))
            self.say(f"  waiting for SLURM job {old['id']} of {p.stage.name} (submitted by an earlier run)")
        else:
            ex = submitit.SlurmExecutor(folder=self.folder, python=shlex.quote(sys.executable))
            ex.update_parameters(**job_parameters(self.study, p.stage, self.cli))
            try:
                job = ex.submit(run_job, self.plugins, fn, args)
            except Exception as e:  # noqa: BLE001 - sbatch refused (bad partition, account...)
                msg = " ".join(str(e).split())[-400:]
                raise SafeAdaptError(f"sbatch refused stage {p.stage.name!r}: {msg}") from None
        p.extra["job"] = {"executor": "slurm", "id": str(job.job_id), "log": str(job.paths.stdout)}
        with self.lock:
            self.running[fut] = _Job(job, p)
        if not self.watcher.is_alive() and not self.stop.is_set():
            self.watcher.start()  # (started with the first job: an executor that submits nothing has no thread)
        self.record()
        return fut

    # ------------------------------------------------------------------------------- watching

    def _watch(self) -> None:
        last_query = 0.0
        while not self.stop.wait(0.5):
            with self.lock:
                items = list(self.running.items())
            if not items:
                continue
            states = None
            if time.time() - last_query >= poll_seconds():
                states, last_query = job_states([j.job.job_id for _, j in items]), time.time()
            for fut, j in items:
                try:
                    self._check(fut, j, states)
                except Exception as e:  # noqa: BLE001 - never leave the driver waiting on a dead watcher
                    with self.lock:
                        self.running.pop(fut, None)
                    if not fut.done():
                        fut.set_result(Outcome("failed", error=f"watching SLURM job {j.job.job_id} failed: {e!r}"))

    def _check(self, fut: cf.Future, j: _Job, states: dict[str, str] | None) -> None:
        if j.job.paths.result_pickle.exists():
            self._resolve(fut, j)
            return
        if states is None:
            return
        j.state = states.get(str(j.job.job_id), "ENDED")
        if j.state in LIVE:
            j.gone_since = None
        elif j.gone_since is None:
            j.gone_since = time.time()  # a shared filesystem may show the result late
        elif time.time() - j.gone_since > max(5.0, 3 * poll_seconds()):
            self._resolve(fut, j)

    def _resolve(self, fut: cf.Future, j: _Job) -> None:
        with self.lock:
            if self.running.pop(fut, None) is None:
                return
        o = self._load(j)
        if o.status == "failed":  # (the stage's own log tail is shown by the progress view)
            tail = log_tail([j.job.paths.stdout, j.job.paths.stderr])
            if tail:
                self.say("\n".join([f"  SLURM job {j.job.job_id} of stage {j.p.stage.name} failed; the end of "
                                    "its job log:"] + [f"    {ln}" for ln in tail]))
            o.error = f"{o.error} (SLURM job {j.job.job_id}, log: {j.job.paths.stdout})"
        fut.set_result(o)

    def _load(self, j: _Job) -> Outcome:
        from submitit.core.utils import pickle_load

        path = j.job.paths.result_pickle
        if not path.exists():
            return Outcome("failed", error=f"the SLURM job ended ({j.state}) without finishing the stage")
        try:
            status, value = pickle_load(path)
        except Exception as e:  # noqa: BLE001 - a truncated or unreadable result
            return Outcome("failed", error=f"unreadable job result {path}: {type(e).__name__}")
        if status == "success" and isinstance(value, Outcome):
            if value.status == "interrupted":  # SIGTERM in the job, not from us: scancel, preemption, time limit
                value.status, value.error = "failed", "interrupted in its job (scancel, preemption or time limit?)"
            return value
        last = [ln for ln in str(value).splitlines() if ln.strip()][-1:] or ["(no traceback)"]
        return Outcome("failed", error=f"the job raised: {last[0].strip()[:300]}")

    def outcome(self, fut: cf.Future) -> Outcome:
        return fut.result()

    def close(self, kill: bool) -> None:
        """Stop watching; with `kill`, scancel the jobs still running (their stages unwind)."""
        self.stop.set()
        with self.lock:
            left = [j for j in self.running.values()]
            self.running.clear()
        if kill and left:
            ids = [str(j.job.job_id) for j in left]
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
            self.say(f"  cancelled SLURM job(s) {', '.join(ids)}")
