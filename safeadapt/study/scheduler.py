"""Parallel stage scheduler: runs a study plan's stages as soon as their inputs are complete, up to
`jobs` at a time, on an executor (executors/: `local`, a process pool on this machine, by default;
`slurm`, one SLURM job a stage). Torch threads per local stage = cores // jobs."""

from __future__ import annotations

import concurrent.futures as cf
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from safeadapt.study.executors.base import Outcome, StageExecutor
from safeadapt.study.executors.local import BROKEN, LocalExecutor, call_stage, worker_init  # noqa: F401

JOB_MEMORY_GB = 1.5  # RAM budget of one stage worker (the demo's largest stage peaks ~1.1 GB)


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def available_memory_gb() -> float | None:
    """MemAvailable from /proc/meminfo in GiB (None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / (1 << 20)
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_jobs() -> int:
    """$SAFEADAPT_JOBS when set; else the number of cores, capped by available memory /
    JOB_MEMORY_GB (SAFEADAPT_JOB_MEMORY_GB overrides the per-job budget)."""
    env = os.environ.get("SAFEADAPT_JOBS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    jobs = available_cores()
    per = float(os.environ.get("SAFEADAPT_JOB_MEMORY_GB") or JOB_MEMORY_GB)
    mem = available_memory_gb()
    if mem is not None and per > 0:
        jobs = min(jobs, max(1, int(mem // per)))
    return max(1, jobs)


def useful_workers(plan: list[Any], jobs: int) -> int:
    """Workers worth starting: none beyond the stages to run, and one when those form a chain
    (each depends on the one before it), where nothing can run alongside anything."""
    todo = [p for p in plan if p.status != "cached"]
    if all(a.stage.name in b.stage.upstream for a, b in zip(todo, todo[1:])):
        return 1
    return max(1, min(jobs, len(todo)))


def threads_per_job(jobs: int) -> int:
    """Torch intra-op threads of each stage, so that jobs x threads <= cores."""
    return max(1, available_cores() // max(1, jobs))


def stage_threads(stage: Any, default: int | None) -> int | None:
    """Torch threads a stage runs with: its declared `threads` capped at the cores, else `default`
    (the run's cores // jobs). A declared count does not depend on --jobs, so neither do its numbers."""
    t = getattr(stage, "threads", None)
    return min(int(t), available_cores()) if t else default


def memory_budget_gb() -> float | None:
    """RAM the running stages may share: $SAFEADAPT_MEMORY_GB, else MemAvailable at the start of the
    run (None where unknown: no memory check)."""
    env = os.environ.get("SAFEADAPT_MEMORY_GB", "").strip()
    try:
        return float(env) if env else available_memory_gb()
    except ValueError:
        return available_memory_gb()


def stage_memory_gb(stage: Any) -> float:
    """GiB a stage is expected to peak at: its declared `memory_gb`, else the per-job budget
    (SAFEADAPT_JOB_MEMORY_GB or JOB_MEMORY_GB)."""
    declared = getattr(stage, "memory_gb", None)
    return float(declared) if declared else float(os.environ.get("SAFEADAPT_JOB_MEMORY_GB") or JOB_MEMORY_GB)


def stage_slots(stage: Any, per_job: int | None, jobs: int) -> int:
    """Worker slots a stage occupies: its threads over the per-job share, at most `jobs` (an undeclared
    stage: 1), so the threads of the stages running at once stay within the cores."""
    t = stage_threads(stage, None)
    if not t or jobs <= 1:
        return 1
    return max(1, min(jobs, -(-t // max(1, per_job or 1))))


#: typical seconds of a stage kind relative to each other (the demo's measured stage times on 2 cores,
#: rounded; a kind may set its own `.cost` attribute); only the order they give matters
KIND_COST = {"world.llm": 50.0, "search": 45.0, "sft": 30.0, "dpo": 30.0, "selfgen_dpo": 60.0, "attack": 15.0,
             "eval": 30.0, "world.tower": 7.0, "repair": 5.0, "world.eval": 3.5, "diagnose.activations": 3.5,
             "diagnose.weights": 1.0, "merge": 1.0}


def expected_cost(kind: str) -> float:
    """A stage kind's expected relative cost for the scheduler's priority (1 when unknown)."""
    try:
        from safeadapt.study.stages import STAGE_KINDS

        own = getattr(STAGE_KINDS.resolve(kind), "cost", None)
    except Exception:  # noqa: BLE001 - an unknown kind fails later, with its own message
        own = None
    return float(own if isinstance(own, (int, float)) else KIND_COST.get(kind, 1.0))



@dataclass
class Scheduler:
    """Dispatches `plan` (PlannedStage list in topological order): a stage is submitted when all its
    upstream stages are complete, longest expected path to the end first (`_priority`); at most `jobs` run at once.

    `run(p)` returns an Outcome; it must be a picklable top-level callable for jobs > 1 or an `executor`.
    Callbacks: `on_start(p, running)`, `on_finish(p)`, `on_skip(p)` (blocked / skipped).
    `slots(p)`: the worker slots p occupies (a stage declared with more threads takes several, and
    the workers it leaves idle wait: no stage starts past a ready one that does not fit yet).
    `memory(p)` / `memory_budget`: GiB p is expected to peak at / the RAM the running stages may
    share; a stage that does not fit waits the same way (alone it always runs, even above the budget)."""

    plan: list[Any]
    jobs: int
    keep_going: bool
    run: Callable[..., Outcome]
    args: Callable[[Any], tuple[Any, ...]]
    on_start: Callable[[Any, list[Any]], None]
    on_finish: Callable[[Any], None]
    on_skip: Callable[[Any], None]
    plugins: list[str] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    slots: Callable[[Any], int] = lambda p: 1
    memory: Callable[[Any], float] = lambda p: 0.0
    memory_budget: float | None = None
    executor: StageExecutor | None = None  # where stages run (executors/); None: the local process pool

    def _priority(self) -> dict[str, tuple[float, int]]:
        """(-bottom level, plan index): a stage's bottom level is its expected cost plus the largest
        bottom level among the stages that need it (the longest expected path from it to the end;
        list scheduling by it, HLFET). Long stages with nothing downstream (a search) then start
        as soon as they can instead of after every short evaluation."""
        children: dict[str, list[str]] = {p.stage.name: [] for p in self.plan}
        for p in self.plan:
            for u in set(p.stage.upstream):
                if u in children:
                    children[u].append(p.stage.name)
        cost = {p.stage.name: expected_cost(p.stage.kind) for p in self.plan}
        memo: dict[str, float] = {}

        def level(n: str) -> float:
            if n not in memo:
                memo[n] = cost[n] + max((level(c) for c in children[n]), default=0.0)
            return memo[n]

        for p in reversed(self.plan):
            level(p.stage.name)
        return {p.stage.name: (-level(p.stage.name), i) for i, p in enumerate(self.plan)}

    def fits(self, p: Any, running: list[Any]) -> bool:
        """Whether p can start beside `running`: its slots within `jobs` and, with a memory budget,
        its expected peak beside theirs within it (a stage alone always fits)."""
        if sum(self.slots(q) for q in running) + self.slots(p) > self.jobs:
            return False
        return self.memory_budget is None or not running or \
            sum(self.memory(q) for q in running) + self.memory(p) <= self.memory_budget

    def _executor(self) -> StageExecutor:
        return self.executor or LocalExecutor(self.jobs, threads_per_job(self.jobs), self.plugins)

    def execute(self) -> None:
        by_name = {p.stage.name: p for p in self.plan}
        prio = self._priority() if self.jobs > 1 else {p.stage.name: (0, i) for i, p in enumerate(self.plan)}
        pending = sorted((p for p in self.plan if p.status != "cached"), key=lambda p: prio[p.stage.name])
        running: dict[cf.Future, Any] = {}
        ex = self._executor()
        interrupted = False
        try:
            while pending or running:
                held = False  # a ready stage waits for slots: none of lower priority starts before it
                for p in list(pending):
                    ups = [by_name[u] for u in p.stage.upstream if u in by_name]
                    ready = all(u.status in ("cached", "done") for u in ups)
                    if any(u.status in ("failed", "blocked") for u in ups):
                        p.status = "blocked"
                    elif self.failures and not self.keep_going:
                        p.status = "skipped"
                    elif ready and not self.fits(p, list(running.values())):
                        held = True
                        continue
                    elif ready and not held:
                        p.status = "running"
                        self.on_start(p, list(running.values()))
                        running[ex.submit(p, self.run, self.args(p))] = p
                    else:
                        continue
                    pending.remove(p)
                    if p.status in ("blocked", "skipped"):
                        self.on_skip(p)
                if not running:
                    if pending:  # cannot happen with a validated DAG; never spin
                        raise RuntimeError(f"scheduler stalled on {[p.stage.name for p in pending]}")
                    continue
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: prio[running[f].stage.name]):
                    p = running.pop(fut)
                    o: Outcome = ex.outcome(fut)
                    p.seconds, p.error = o.seconds, o.error
                    p.extra.update({"pid": o.pid, "start_unix": o.start, "end_unix": o.end})
                    if o.status == "interrupted":
                        p.status = "interrupted"
                        raise KeyboardInterrupt
                    p.status = o.status
                    if o.status == "failed":
                        self.failures.append(p)
                    self.on_finish(p)
        except BaseException:
            interrupted = True
            for p in running.values():
                p.status = "interrupted"
            raise
        finally:
            ex.close(kill=interrupted)


def overlaps(plan: list[Any]) -> dict[str, list[str]]:
    """For each stage that ran: the stages whose run time overlapped its own (ran in parallel)."""
    ran = [p for p in plan if p.extra.get("start_unix") and p.extra.get("end_unix")]
    out: dict[str, list[str]] = {}
    for p in ran:
        a0, a1 = p.extra["start_unix"], p.extra["end_unix"]
        out[p.stage.name] = [
            q.stage.name for q in ran if q is not p and q.extra["start_unix"] < a1 and a0 < q.extra["end_unix"]
        ]
    return out
