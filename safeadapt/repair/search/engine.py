"""The search loop: optuna's multi-objective sampler (TPE or NSGA-II) over the space, trials in a
SQLite database in the output dir, every trial scored on the proxy subset through a keyed eval
cache, then the proxy front re-evaluated on the full suites. A SIGKILLed search resumes: finished
trials are in the database, an interrupted one is marked failed and its point re-queued (its
evaluation, if it finished, comes back from the cache), so none is lost or repeated."""

from __future__ import annotations

import fcntl
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from safeadapt.core.atomic import atomic_write_json, atomic_write_text
from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.jsonl import JsonlCheckpoint
from safeadapt.core.provenance import stable_hash
from safeadapt.repair.search.evaluate import Evaluator, ModelEvaluator, objectives
from safeadapt.repair.search.space import DIRECTIONS, OBJECTIVES, Space, load_space

STUDY_NAME = "search"
DIRS = [DIRECTIONS[k] for k in OBJECTIVES]


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    with open(out / ".search.lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SafeAdaptError(f"{out}: another search is running in this directory") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _sampler(sp: Space, trials: int, offset: int) -> Any:
    import optuna

    s = sp.cfg.search
    seed = sp.seed + offset  # a resumed run does not replay the first run's random start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 3)))
        start = s.startup_trials if s.startup_trials is not None else max(4, min(10, trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=start, multivariate=True, group=True)


def _open_study(out: Path, sp: Space, trials: int) -> tuple[Any, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(out / 'search.db').resolve()}")
    try:
        n = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    except KeyError:
        n = 0
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, directions=DIRS,
                                sampler=_sampler(sp, trials, n), load_if_exists=True)
    return study, storage


def _recover(study: Any, storage: Any) -> int:
    """Trials left RUNNING by a killed process: mark failed and re-queue their points."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    return len(stale)


def _complete(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _write_trials(study: Any, out: Path) -> None:
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = {**t.user_attrs, **t.user_attrs.get("result", {})}
        rows.append({"number": t.number, "state": t.state.name, "method": ua.get("method", t.params.get("method")),
                     "params": ua.get("params", {k: v for k, v in t.params.items() if k != "method"}),
                     "objectives": dict(zip(OBJECTIVES, t.values)) if t.values else None,
                     "metrics": ua.get("metrics"), "items": ua.get("items"), "evaluated": ua.get("evaluated"),
                     "seconds": ua.get("seconds"), "retry_of": ua.get("retry_of"), "key": ua.get("key")})
    atomic_write_text(out / "trials.jsonl", "".join(_json(r) + "\n" for r in rows))


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)


class _Scorer:
    """The keyed eval cache around an evaluator: one record per evaluation actually run."""

    def __init__(self, sp: Space, out: Path, evaluator: Evaluator, frac: float) -> None:
        self.sp, self.out, self.ev, self.frac = sp, out, evaluator, frac
        self.cache = JsonlCheckpoint(out / "cache" / "evals.jsonl", key_field="key")
        self.fp = sp.fingerprint()

    def candidate(self, method: str, params: dict[str, Any]) -> str:
        """The key of a candidate (names its recipe and its eval dirs)."""
        return stable_hash([self.fp, method, params])

    def key(self, method: str, params: dict[str, Any], fidelity: str) -> str:
        return stable_hash([self.candidate(method, params), fidelity, self.frac if fidelity == "proxy" else 1.0])

    def __call__(self, method: str, params: dict[str, Any], fidelity: str) -> tuple[dict[str, Any], bool]:
        if self.frac >= 1:
            fidelity = "full"  # the proxy is the full suite: one evaluation serves both
        k = self.key(method, params, fidelity)
        rec = self.cache.get(k)
        if rec is not None:
            return rec, False
        t0 = time.perf_counter()
        work = self.out / "evals" / f"{fidelity}-{self.candidate(method, params)[:12]}"
        res = self.ev(method, params, fidelity, work)
        spec = self.sp.cfg.objectives
        obj = objectives(res["metrics"], spec.asr, spec.asr_components, spec.attack_success)
        rec = {"key": k, "method": method, "params": params, "fidelity": fidelity, "metrics": res["metrics"],
               "objectives": obj, "items": int(res.get("items") or 0), "seconds": time.perf_counter() - t0}
        self.cache.append(rec)
        return rec, True


def _identity(out: Path, sp: Space, frac: float) -> None:
    ident = {"space": sp.fingerprint(), "proxy_frac": frac}
    f = out / "search.json"
    if f.is_file():
        import json

        old = json.loads(f.read_text())
        if {k: old.get(k) for k in ident} != ident:
            raise SafeAdaptError(f"{out}: holds a search over a different space or proxy fraction; use a new --out")
    else:
        atomic_write_json(f, ident)


def search(space: Any, out: str | os.PathLike, *, trials: int | None = None, proxy_frac: float | None = None,
           evaluator: Evaluator | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) a Pareto search; writes DIR/pareto.json, DIR/trials.jsonl, DIR/summary.json,
    DIR/recipes/. Returns the summary (with `front`, the pareto.json points)."""
    from contextlib import nullcontext

    from rich.console import Console

    from safeadapt.core.console import wide

    sp = load_space(space)
    n_trials = int(trials if trials is not None else sp.cfg.search.trials)
    frac = float(proxy_frac if proxy_frac is not None else sp.cfg.search.proxy_frac)
    if n_trials < 1:
        raise SafeAdaptError("--trials must be >= 1")
    if not 0 < frac <= 1:
        raise SafeAdaptError(f"--proxy-frac {frac} must be in (0, 1]")
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    with nullcontext(Console(quiet=True)) if quiet else wide(120) as con, _lock(outp):
        _identity(outp, sp, frac)
        ev = evaluator if evaluator is not None else ModelEvaluator(sp, outp, frac)
        ev.prepare()  # datasets loaded and checked before any trial runs
        study, storage = _open_study(outp, sp, n_trials)
        if _recover(study, storage):
            con.print("resuming: re-queued the trial a killed run left unfinished")
        score = _Scorer(sp, outp, ev, frac)
        t_start = time.perf_counter()
        while len(_complete(study)) < n_trials:
            trial = study.ask()
            method, params = sp.suggest(trial)
            try:
                rec, ran = score(method, params, "proxy")
            except Exception:  # a bad point or a broken model: recorded as failed, not retried on resume
                from optuna.trial import TrialState

                study.tell(trial, state=TrialState.FAIL)
                _write_trials(study, outp)
                raise
            o = rec["objectives"]
            # one attribute, one SQLite commit (each commit is an fsync)
            trial.set_user_attr("result", {"method": method, "params": params, "key": score.candidate(method, params),
                                           "metrics": rec["metrics"], "items": rec["items"], "evaluated": ran,
                                           "seconds": rec["seconds"] if ran else 0.0})
            study.tell(trial, [o[k] for k in OBJECTIVES])
            _write_trials(study, outp)
            done = len(_complete(study))
            con.print(f"trial {done}/{n_trials} {method} {_fmt_params(params)}: asr {o['asr']:.3f} over_refusal "
                      f"{o['over_refusal']:.3f} helpfulness {o['helpfulness']:.3f}" + ("" if ran else " (cached)"))
        from safeadapt.repair.search.report import finish

        return finish(sp, outp, study, score, frac, n_trials, con, time.perf_counter() - t_start)


def _fmt_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
