"""OpenAIBackend against a local stub server on 127.0.0.1: payload mapping, retry after a 500,
timeouts retried then reported, no retry on 400, and the API key never in logs/errors/results."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from safeadapt.core.errors import SafeAdaptError
from safeadapt.eval.backends.openai_http import OpenAIBackend, chat_payload
from safeadapt.eval.types import DecodingConfig, GenRequest

SECRET = "sk-test-SECRET-4f9a1c"


class _Stub:
    def __init__(self):
        self.script: list[str] = []  # per request: "ok" | "500" | "400" | "slow"
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []


@pytest.fixture()
def stub():
    state = _Stub()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.bodies.append(body)
            state.auth.append(self.headers.get("Authorization"))
            mode = state.script.pop(0) if state.script else "ok"
            if mode == "slow":
                time.sleep(0.6)
                mode = "ok"
            if mode in ("500", "400", "429"):
                self.send_response(int(mode))
                self.end_headers()
                self.wfile.write(b'{"error": "boom"}')
                return
            text = (
                "echo: " + body["messages"][-1]["content"]
                if isinstance(body["messages"][-1]["content"], str)
                else "img"
            )
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    state.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield state
    srv.shutdown()
    srv.server_close()


def _req(k="a", text="hi"):
    return GenRequest(key=k, messages=[{"role": "user", "content": text}])


def test_generate_payload_and_key(stub, monkeypatch):
    monkeypatch.setenv("MY_KEY", SECRET)
    be = OpenAIBackend("served-model", stub.url, api_key_env="MY_KEY", concurrency=2)
    dec = DecodingConfig(max_new_tokens=7, temperature=0.5, top_p=0.9, seed=3)
    out = be.generate([_req("a", "one"), _req("b", "two")], dec)
    assert out == ["echo: one", "echo: two"]
    body = stub.bodies[0]
    assert body["model"] == "served-model" and body["max_tokens"] == 7
    assert body["temperature"] == 0.5 and body["top_p"] == 0.9 and isinstance(body["seed"], int)
    assert stub.auth[0] == f"Bearer {SECRET}"
    assert SECRET not in repr(be) and SECRET not in be.fingerprint


def test_retry_500_then_success(stub, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stub.script = ["500", "429", "ok"]
    be = OpenAIBackend("m", stub.url, backoff=0.01)
    with caplog.at_level(logging.DEBUG, logger="safeadapt.eval.openai"):
        assert be.generate([_req()], DecodingConfig()) == ["echo: hi"]
    assert len(stub.bodies) == 3
    assert "HTTP 500" in caplog.text and SECRET not in caplog.text


def test_timeout_retried_then_error_without_key(stub, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stub.script = ["slow", "slow"]
    be = OpenAIBackend("m", stub.url, timeout=0.2, max_retries=1, backoff=0.01)
    with caplog.at_level(logging.DEBUG, logger="safeadapt.eval.openai"), pytest.raises(SafeAdaptError) as ei:
        be.generate([_req()], DecodingConfig())
    msg = str(ei.value)
    assert "after 2 attempts" in msg and "timed out" in msg.lower() and SECRET not in msg and SECRET not in caplog.text
    # a timeout then success recovers
    stub.script = ["slow"]
    assert OpenAIBackend("m", stub.url, timeout=0.3, max_retries=2, backoff=0.01).generate(
        [_req()], DecodingConfig()
    ) == ["echo: hi"]


def test_client_error_not_retried_and_connection_refused(stub):
    stub.script = ["400"]
    with pytest.raises(SafeAdaptError, match="HTTP 400"):
        OpenAIBackend("m", stub.url, backoff=0.01).generate([_req()], DecodingConfig())
    assert len(stub.bodies) == 1
    with pytest.raises(SafeAdaptError, match="after 2 attempts"):
        OpenAIBackend("m", "http://127.0.0.1:9/v1", max_retries=1, backoff=0.01, timeout=1).generate(
            [_req()], DecodingConfig()
        )


def test_image_parts_and_results_without_key(stub, monkeypatch, tmp_path):
    from _tiny import FakeJudge
    from PIL import Image

    from safeadapt.data.schema import Sample
    from safeadapt.eval.runner import evaluate

    img = tmp_path / "x.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(img)
    body = chat_payload(
        "m", GenRequest(key="k", messages=[{"role": "user", "content": "q"}], images=[str(img)]), DecodingConfig()
    )
    parts = body["messages"][0]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "q"} and "top_p" not in body  # greedy
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    samples = [Sample(id=f"h{i}", prompt=f"bad {i}", label="harmful", category="c") for i in range(3)]
    res = evaluate("served", ["text-safety"], tmp_path / "out", judge=FakeJudge(), datasets={"text-safety": samples},
                   backend="openai", backend_options={"base_url": stub.url}, bootstrap=50)
    assert res["suites"]["text-safety"]["asr"]["n"] == 3
    for f in ("results.json", "generations.jsonl", "cache/generations.jsonl"):
        assert SECRET not in (tmp_path / "out" / f).read_text()
