"""Generation cache: keys (fingerprint, sample id, prompt, decoding), reuse across suites/runs,
and a REAL kill: a subprocess generating with a slow backend is SIGKILLed mid-run; resuming
completes the records with no duplicates and without regenerating finished ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _tiny import ScriptedBackend

from safeadapt.core.jsonl import read_jsonl_records
from safeadapt.eval.cache import GenerationCache, cached_generate, cached_loglikelihood
from safeadapt.eval.types import DecodingConfig, GenRequest, LoglikRequest

TESTS = Path(__file__).resolve().parent
N = 40


def _requests(n=N):
    return [
        GenRequest(key=f"s{i:03d}", messages=[{"role": "user", "content": f"prompt {i} " + "x" * (i % 7)}])
        for i in range(n)
    ]


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from _tiny import ScriptedBackend
from safeadapt.eval.cache import GenerationCache, cached_generate
from safeadapt.eval.types import DecodingConfig, GenRequest
reqs = [GenRequest(key=f"s{{i:03d}}", messages=[{{"role": "user", "content": f"prompt {{i}} " + "x" * (i % 7)}}])
        for i in range({n})]
be = ScriptedBackend(delay=0.15, log_path={log!r})
cached_generate(be, reqs, DecodingConfig(batch_size=4), GenerationCache({cache!r}))
print("finished")
"""


def test_kill_and_resume(tmp_path):
    cache_path, log = tmp_path / "gen.jsonl", tmp_path / "calls.log"
    code = _CHILD.format(tests=str(TESTS), n=N, log=str(log), cache=str(cache_path))
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        if cache_path.exists() and len(cache_path.read_bytes().splitlines()) >= 12:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_after_kill = {r["sample_key"] for r in read_jsonl_records(cache_path)}
    assert 12 <= len(done_after_kill) < N  # killed mid-run

    be = ScriptedBackend()
    out = cached_generate(be, _requests(), DecodingConfig(batch_size=4), GenerationCache(cache_path))
    assert out == [f"reply to s{i:03d}" for i in range(N)]
    # only the unfinished requests were generated again
    assert sorted(be.gen_calls) == sorted({f"s{i:03d}" for i in range(N)} - done_after_kill)
    lines = [json.loads(x) for x in cache_path.read_text().splitlines()]
    keys = [r["key"] for r in lines]
    assert len(keys) == len(set(keys)) == N
    # a third run generates nothing
    be3 = ScriptedBackend()
    assert cached_generate(be3, _requests(), DecodingConfig(batch_size=4), GenerationCache(cache_path)) == out
    assert be3.gen_calls == []


def test_cache_keys_and_loglik(tmp_path):
    cache = GenerationCache(tmp_path / "c.jsonl")
    be = ScriptedBackend()
    reqs = _requests(5)
    dec = DecodingConfig(batch_size=2)
    cached_generate(be, reqs, dec, cache)
    assert len(be.gen_calls) == 5
    cached_generate(be, reqs, dec.model_copy(update={"batch_size": 3, "seed": 9}), cache)  # greedy: same key
    assert len(be.gen_calls) == 5
    cached_generate(be, reqs, dec.model_copy(update={"max_new_tokens": 9}), cache)
    assert len(be.gen_calls) == 10
    cached_generate(be, reqs, dec.model_copy(update={"temperature": 0.5, "seed": 1}), cache)
    cached_generate(be, reqs, dec.model_copy(update={"temperature": 0.5, "seed": 2}), cache)
    assert len(be.gen_calls) == 20
    changed = [
        r.model_copy(update={"messages": [{"role": "user", "content": "other"}]}) if i == 0 else r
        for i, r in enumerate(reqs)
    ]
    cached_generate(be, changed, dec, cache)
    assert be.gen_calls[20:] == ["s000"]  # same id, new prompt -> regenerated
    other_fp = ScriptedBackend(fingerprint="other")
    cached_generate(other_fp, reqs, dec, cache)
    assert len(other_fp.gen_calls) == 5
    ll = [
        LoglikRequest(key="q::0", messages=[{"role": "user", "content": "q"}], continuation=c) for c in ("ab", "abcd")
    ]
    assert cached_loglikelihood(be, ll, cache) == [-2.0, -4.0]
    assert cached_loglikelihood(be, ll, GenerationCache(tmp_path / "c.jsonl")) == [-2.0, -4.0]
    assert len(be.ll_calls) == 2
