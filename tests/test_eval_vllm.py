"""vLLM request mapping, tested without vLLM installed: prompt inputs with multi_modal_data,
SamplingParams fields with per-request seeds, and prompt-logprob summation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from _tiny import CHATML

from safeadapt.core.errors import SafeAdaptError
from safeadapt.eval.backends.common import derive_seed
from safeadapt.eval.backends.vllm import continuation_logprob, prompt_input, sampling_kwargs
from safeadapt.eval.types import DecodingConfig, GenRequest


def _render(msgs):
    import jinja2

    return jinja2.Template(CHATML).render(messages=msgs, add_generation_prompt=True)


def test_sampling_kwargs():
    greedy = sampling_kwargs(DecodingConfig(max_new_tokens=33), "k1")
    assert greedy["max_tokens"] == 33 and greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0
    s = sampling_kwargs(DecodingConfig(temperature=0.7, top_p=0.8, seed=5), "k1")
    assert s["temperature"] == 0.7 and s["top_p"] == 0.8
    assert s["seed"] == derive_seed(5, "k1") % 2**31
    assert s["seed"] != sampling_kwargs(DecodingConfig(temperature=0.7, seed=5), "k2")["seed"]


def test_prompt_input_text_and_images(tmp_path):
    from PIL import Image

    txt = prompt_input(
        GenRequest(key="a", messages=[{"role": "system", "content": "be safe"}, {"role": "user", "content": "hi"}]),
        _render,
    )
    assert txt == {
        "prompt": "<|im_start|>system\nbe safe<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    }
    p = tmp_path / "i.png"
    Image.new("RGB", (5, 5), (9, 9, 9)).save(p)
    one = prompt_input(GenRequest(key="b", messages=[{"role": "user", "content": "what?"}], images=[str(p)]), _render)
    assert one["prompt"] == "<|im_start|>user\n<image>\nwhat?<|im_end|>\n<|im_start|>assistant\n"
    assert one["multi_modal_data"]["image"].size == (5, 5)
    two = prompt_input(
        GenRequest(key="c", messages=[{"role": "user", "content": "x"}], images=[str(p), str(p)]), _render
    )
    assert two["prompt"].count("<image>") == 2 and len(two["multi_modal_data"]["image"]) == 2
    with pytest.raises(SafeAdaptError, match="unreadable image"):
        prompt_input(
            GenRequest(key="d", messages=[{"role": "user", "content": "x"}], images=[str(tmp_path / "no.png")]), _render
        )


def test_continuation_logprob():
    ids = [5, 6, 7, 8]
    plp = [
        None,
        {6: SimpleNamespace(logprob=-0.5)},
        {7: SimpleNamespace(logprob=-1.25), 1: SimpleNamespace(logprob=-0.1)},
        {8: -2.0},
    ]
    assert continuation_logprob(plp, ids, 2) == pytest.approx(-3.25)
    with pytest.raises(SafeAdaptError):
        continuation_logprob([None, {}, {}, {}], ids, 2)


def test_vllm_backend_needs_extra():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm installed")
    from safeadapt.eval.backends import make_backend

    with pytest.raises(SafeAdaptError, match=r"safeadapt\[vllm\]"):
        make_backend("/some/model", "vllm")
