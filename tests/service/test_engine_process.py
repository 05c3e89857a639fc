"""The engine in a process of its own (GAUNTLET_ENGINE_PROCESS): same answers as in-thread,
refusals, aborts, chaos and drain across the pipe, both processes in the memory budget, and an
engine core that dies fails its requests, readiness, liveness and vLLM's /health."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.service.conftest import ServerProcess
from tests.service.sse import events, post_stream
from tests.service.test_service_api import metric
from tests.service.test_service_lifecycle import long_streams_server, read_until_first_token

pytestmark = pytest.mark.timeout(300)


def engine_core(srv: ServerProcess) -> psutil.Process:
    [child] = [
        p for p in psutil.Process(srv.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())
    ]
    return child


def stream_in_thread(
    srv: ServerProcess, body: dict[str, Any], out: dict[str, Any]
) -> threading.Event:
    """Consume a stream in a thread; the event is set at its first token."""
    started = threading.Event()

    def run() -> None:
        with httpx.stream("POST", srv.url + "/v1/completions", json=body, timeout=120) as r:
            out["status"] = r.status_code
            lines = r.iter_lines()
            got = read_until_first_token(lines)
            started.set()
            out["events"] = got + events(list(lines))

    out["thread"] = threading.Thread(target=run, daemon=True)
    out["thread"].start()
    return started


def test_the_engine_process_serves_refuses_aborts_and_drains_as_the_thread_does(
    tiny_model_dir: Path, tmp_path: Path, server: ServerProcess
) -> None:
    srv = long_streams_server(
        tiny_model_dir,
        tmp_path / "server.log",
        step_ms=20,
        engine_process="true",
        max_num_seqs="2",
        max_queue="1",
        liveness_stall_s="1.5",
        drain_timeout_s="2",
    )
    try:
        core = engine_core(srv)
        body = {"prompt": "Hello there", "max_tokens": 12, "temperature": 0}
        here = httpx.post(srv.url + "/v1/completions", json=body, timeout=60).json()
        thread = httpx.post(server.url + "/v1/completions", json=body, timeout=60).json()
        assert here["choices"][0]["text"] == thread["choices"][0]["text"]
        assert here["usage"] == thread["usage"]
        status, chunks = post_stream(
            srv.url + "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 5,
                "stream_options": {"include_usage": True},
            },
        )
        assert status == 200 and chunks[-1] == "[DONE]"
        assert chunks[-2]["usage"]["completion_tokens"] == 5
        assert metric(srv, "vllm:request_success_total", "") >= 2  # metrics cross the pipe

        # the budget counts both processes
        held = httpx.post(srv.url + "/debug/allocate", params={"mb": 1}, timeout=30).json()
        both = psutil.Process(srv.proc.pid).memory_info().rss + core.memory_info().rss
        assert held["rss_bytes"] > 0.9 * both > psutil.Process(srv.proc.pid).memory_info().rss
        httpx.delete(srv.url + "/debug/allocate", timeout=30)

        # two run, one waits, the next is refused before its first byte
        long = {"prompt": "go", "max_tokens": 900, "ignore_eos": True, "stream": True}
        a: dict[str, Any] = {}
        b: dict[str, Any] = {}
        assert stream_in_thread(srv, long, a).wait(30) and stream_in_thread(srv, long, b).wait(30)
        assert metric(srv, "vllm:num_requests_running") == 2

        def queued() -> None:
            with pytest.raises(httpx.ReadTimeout):  # nothing is sent before the first token
                httpx.post(srv.url + "/v1/completions", json=long, timeout=3.0)

        third = threading.Thread(target=queued, daemon=True)
        third.start()
        deadline = time.monotonic() + 10
        while metric(srv, "vllm:num_requests_waiting") < 1:
            assert time.monotonic() < deadline, "the third request never queued"
            time.sleep(0.02)
        refused = httpx.post(
            srv.url + "/v1/completions", json={**long, "stream": False}, timeout=30
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "queue_full"
        third.join(30)
        # the queued client left: its request goes; the running two still run
        deadline = time.monotonic() + 10
        while metric(srv, "vllm:num_requests_waiting") > 0:
            assert time.monotonic() < deadline, "the abandoned waiting request was never dropped"
            time.sleep(0.02)
        assert metric(srv, "vllm:num_requests_running") == 2

        # a hung engine core fails liveness (its heartbeat is shared), not vLLM's /health
        httpx.post(srv.url + "/debug/hang", params={"seconds": 3}, timeout=10)
        deadline = time.monotonic() + 3
        while httpx.get(srv.url + "/healthz", timeout=5).status_code == 200:
            assert time.monotonic() < deadline, "liveness never saw the hang"
            time.sleep(0.05)
        assert httpx.get(srv.url + "/health", timeout=5).status_code == 200
        deadline = time.monotonic() + 10
        while httpx.get(srv.url + "/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "liveness never recovered"
            time.sleep(0.05)

        # SIGTERM: the streams are cut by the drain timeout with an error event, exit 0
        srv.proc.send_signal(signal.SIGTERM)
        for out in (a, b):
            out["thread"].join(60)
            assert out["events"][-1] == "[DONE]"
            assert out["events"][-2]["error"]["code"] == 503
            assert "drain timeout" in out["events"][-2]["error"]["message"]
        assert srv.proc.wait(60) == 0, srv.logs()
        core.wait(10)  # the engine core went with it
    finally:
        srv.stop()


def test_a_dead_engine_core_fails_its_requests_and_every_probe(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    srv = long_streams_server(
        tiny_model_dir, tmp_path / "server.log", step_ms=20, engine_process="true"
    )
    try:
        out: dict[str, Any] = {}
        body = {"prompt": "go", "max_tokens": 900, "ignore_eos": True, "stream": True}
        assert stream_in_thread(srv, body, out).wait(30)
        engine_core(srv).kill()
        out["thread"].join(30)
        assert out["events"][-1] == "[DONE]", "a cut stream still ends with [DONE]"
        error = out["events"][-2]["error"]
        assert error["code"] == 503 and "engine process exited" in error["message"]
        for probe in ("/healthz", "/health", "/ready"):
            assert httpx.get(srv.url + probe, timeout=5).status_code == 503, probe
        late = httpx.post(srv.url + "/v1/completions", json={"prompt": "x"}, timeout=10)
        assert late.status_code == 503 and late.json()["error"]["code"] == "engine_dead"
        assert '"event": "engine_died"' in srv.logs()
    finally:
        srv.stop()


def test_an_engine_core_that_cannot_load_ends_the_server_with_its_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "no-weights"
    broken.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, broken / f.name)
    srv = ServerProcess(broken, tmp_path / "server.log", engine_process="true")
    try:
        assert srv.proc.wait(120) == 3, srv.logs()
        assert '"event": "model_load_failed"' in srv.logs()
        assert "engine process failed to load" in srv.logs()
    finally:
        srv.stop()
