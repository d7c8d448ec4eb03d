"""Backend "auto": vLLM when installed and a CUDA GPU is present, transformers otherwise, with one
stderr line naming the backend that ran; HF-only options never reach vLLM."""

from __future__ import annotations

import importlib.util

import pytest

import safeadapt.eval.backends as B
from safeadapt.core.errors import SafeAdaptError


def _env(monkeypatch, vllm: bool, gpu: bool) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        B.importlib.util, "find_spec", lambda n, *a: (object() if vllm else None) if n == "vllm" else real(n, *a)
    )
    monkeypatch.setattr(B, "_cuda_available", lambda: gpu)


@pytest.mark.parametrize(
    "vllm,gpu,want", [(True, True, "vllm"), (True, False, "hf"), (False, True, "hf"), (False, False, "hf")]
)
def test_auto_selection_table(monkeypatch, vllm, gpu, want):
    _env(monkeypatch, vllm, gpu)
    kind, why = B.select_backend("auto")
    assert kind == want and why.startswith("auto: ")
    if want == "hf":
        assert ("not installed" in why) == (not vllm)


def test_explicit_kind_is_kept_and_unknown_is_one_line(monkeypatch):
    _env(monkeypatch, True, True)
    assert B.select_backend("hf") == ("hf", "requested")
    with pytest.raises(SafeAdaptError, match="unknown backend 'tgi'; known: auto, hf, openai, vllm"):
        B.make_backend("m", "tgi")


def test_auto_builds_vllm_without_hf_options_and_logs(monkeypatch, capsys):
    seen = {}

    class FakeVLLM:
        def __init__(self, ref, **kw):
            seen.update(ref=ref, **kw)

    _env(monkeypatch, True, True)
    B.BACKENDS.load()
    monkeypatch.setitem(B.BACKENDS._items, "vllm", FakeVLLM)  # the registered class, swapped for this test
    be = B.make_backend("org/model", "auto", dtype="bfloat16", threads=1, max_batch=8, gpu_memory_utilization=0.8)
    assert isinstance(be, FakeVLLM)
    assert seen == {"ref": "org/model", "dtype": "bfloat16", "gpu_memory_utilization": 0.8}
    err = capsys.readouterr().err
    assert "safeadapt: generation backend: vllm (auto: vllm is installed and a CUDA GPU is present)" in err


def test_auto_falls_back_to_hf_and_drops_vllm_options(monkeypatch, capsys):
    seen = {}

    class FakeHF:
        def __init__(self, ref=None, dtype="float32", threads=None, max_batch=16, **kw):
            seen.update(ref=ref, dtype=dtype, threads=threads, max_batch=max_batch, **kw)

    _env(monkeypatch, False, True)
    B.BACKENDS.load()
    monkeypatch.setitem(B.BACKENDS._items, "hf", FakeHF)  # the registered class, swapped for this test
    B.make_backend("m", "auto", dtype="float32", threads=1, gpu_memory_utilization=0.8, max_model_len=512)
    assert seen == {"ref": "m", "dtype": "float32", "threads": 1, "max_batch": 16}
    assert "safeadapt: generation backend: hf (auto: vllm is not installed)" in capsys.readouterr().err
