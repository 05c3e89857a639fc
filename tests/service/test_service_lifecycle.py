"""Probes during model load, then SIGTERM during a burst: no accepted request is lost, exit 0."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import ServerProcess
from tests.service.sse import events
from tests.service.test_service_api import metric

pytestmark = pytest.mark.timeout(300)


def test_probes_during_load_then_graceful_drain(tiny_model_dir: Path, tmp_path: Path) -> None:
    srv = ServerProcess(
        tiny_model_dir,
        tmp_path / "server.log",
        startup_delay_s="3",
        max_num_seqs="4",
        max_queue="64",
        max_queue_wait_s="120",  # the burst waits its turn: this tests the drain
        drain_timeout_s="120",
    )
    try:
        srv.wait_listening()
        # During the load: no inference loop yet (liveness 503: only a startup probe lets a
        # container load), not started, not ready, API refuses with 503 and is counted.
        assert httpx.get(srv.url + "/healthz", timeout=10).status_code == 503
        assert httpx.get(srv.url + "/startup", timeout=10).status_code == 503
        assert httpx.get(srv.url + "/ready", timeout=10).status_code == 503
        early = httpx.post(srv.url + "/v1/completions", json={"prompt": "x"}, timeout=10)
        assert early.status_code == 503 and early.json()["error"]["code"] == "not_ready"
        srv.wait_started()
        assert httpx.get(srv.url + "/ready", timeout=10).status_code == 200
        assert metric(srv, "gauntlet:requests_while_unready_total") >= 1
        phases = httpx.get(srv.url + "/startup", timeout=10).json()["phases"]
        assert set(phases) == {"imports", "storage_delay", "weights", "warmup"}
        assert phases["storage_delay"] >= 3.0
        assert '"event": "model_ready"' in srv.logs()

        burst = 16

        def one(i: int) -> httpx.Response:
            return httpx.post(
                srv.url + "/v1/completions",
                json={"prompt": f"drain {i}", "max_tokens": 160, "temperature": 0},
                timeout=240,
            )

        with concurrent.futures.ThreadPoolExecutor(burst) as pool:
            futures = [pool.submit(one, i) for i in range(burst)]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # every request admitted (queued or running)?
                accepted = metric(srv, "vllm:num_requests_waiting") + metric(
                    srv, "vllm:num_requests_running"
                )
                if accepted >= burst - 4:  # the first batch may already have finished
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"the burst was never seen in flight: {[f.done() for f in futures]}")
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            assert httpx.get(srv.url + "/ready", timeout=10).status_code == 503
            late = httpx.post(srv.url + "/v1/completions", json={"prompt": "late"}, timeout=10)
            assert late.status_code == 503 and late.json()["error"]["code"] == "draining"
            assert httpx.get(srv.url + "/healthz", timeout=10).status_code == 200
            codes = [f.result().status_code for f in futures]
        assert codes == [200] * burst, codes
        assert srv.proc.wait(120) == 0, srv.logs()
        assert '"clean": true' in srv.logs()
    finally:
        srv.stop()


def long_streams_server(
    tiny_model_dir: Path, log: Path, step_ms: float, **env: str
) -> ServerProcess:
    """A server whose steps take >= `step_ms` (its slow-accelerator hook): the tiny model
    otherwise streams ~1,000 tokens/s, faster than a test can act mid-stream."""
    srv = ServerProcess(tiny_model_dir, log, max_tokens_limit="960", debug_endpoints="true", **env)
    srv.wait_started()
    httpx.post(
        srv.url + "/debug/slow", params={"step_ms": step_ms, "seconds": 600}, timeout=10
    ).raise_for_status()
    return srv


def read_until_first_token(lines: Any) -> list[Any]:
    first = events([next(lines)])
    assert first[0]["choices"][0]["finish_reason"] is None
    return first


def wait_for_the_abort(srv: ServerProcess, what: str) -> None:
    """Until the one abandoned `what` is counted as aborted; then nothing runs."""
    abort = '{engine="0",finished_reason="abort",model_name="tiny"}'
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if metric(srv, "vllm:request_success_total", abort) == 1:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the abandoned {what} was never aborted")
    assert metric(srv, "vllm:num_requests_running") == 0


def test_a_client_that_disconnects_frees_its_slot(tiny_model_dir: Path, tmp_path: Path) -> None:
    srv = long_streams_server(tiny_model_dir, tmp_path / "server.log", step_ms=10)
    try:
        body = {"prompt": "go", "max_tokens": 900, "ignore_eos": True, "stream": True}
        with (
            httpx.Client(timeout=60) as client,
            client.stream("POST", srv.url + "/v1/completions", json=body) as r,
        ):
            lines = r.iter_lines()  # dropping this iterator would close the response
            read_until_first_token(lines)
            assert metric(srv, "vllm:num_requests_running") == 1
        # leaving the block closed the connection mid-stream
        wait_for_the_abort(srv, "stream")
        generated = metric(srv, "vllm:generation_tokens_total")
        assert generated < 900, "the engine generated the whole abandoned stream"
    finally:
        srv.stop()


def test_a_non_streaming_client_that_disconnects_frees_its_slot(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A non-streaming handler is not cancelled when its client goes: the service watches for
    `http.disconnect` itself (as vLLM's `with_cancellation` does)."""
    srv = long_streams_server(tiny_model_dir, tmp_path / "server.log", step_ms=10)
    try:
        body = {"prompt": "go", "max_tokens": 900, "ignore_eos": True}
        with pytest.raises(httpx.ReadTimeout):  # 900 steps of >= 10 ms: >= 9 s
            httpx.post(srv.url + "/v1/completions", json=body, timeout=1.0)
        wait_for_the_abort(srv, "request")
        assert metric(srv, "vllm:generation_tokens_total") < 900
        # the service still answers: the next request runs to the end
        done = httpx.post(srv.url + "/v1/completions", json={**body, "max_tokens": 3}, timeout=30)
        assert done.status_code == 200 and done.json()["usage"]["completion_tokens"] == 3
    finally:
        srv.stop()


def test_drain_finishes_streams_in_time_and_cuts_the_rest_with_an_error_event(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    srv = long_streams_server(
        tiny_model_dir, tmp_path / "server.log", step_ms=5, drain_timeout_s="1.5"
    )
    results: dict[str, list[Any]] = {}

    def consume(name: str, max_tokens: int, started: threading.Event) -> None:
        body = {"prompt": name, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", srv.url + "/v1/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()
            got = read_until_first_token(lines)
            started.set()
            got += events(list(lines))
        results[name] = got

    try:
        flags = {"short": threading.Event(), "long": threading.Event()}
        threads = [
            threading.Thread(target=consume, args=("short", 40, flags["short"])),
            threading.Thread(target=consume, args=("long", 950, flags["long"])),
        ]
        for t in threads:
            t.start()
        assert all(f.wait(30) for f in flags.values())
        srv.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert srv.proc.wait(60) == 0, srv.logs()
    finally:
        srv.stop()
    short, long = results["short"], results["long"]
    assert short[-1] == "[DONE]" and short[-2]["choices"][0]["finish_reason"] == "length"
    assert sum(len(c["choices"][0]["text"].encode()) > 0 for c in short[:-1]) > 0
    assert long[-1] == "[DONE]", "the cut stream must still end with [DONE]"
    error = long[-2]["error"]
    assert error["code"] == 503 and "drain timeout" in error["message"]
    assert all("error" not in c for c in long[:-2])
    assert '"clean": false' in srv.logs()
