"""Probes during model load, then SIGTERM during a burst: no accepted request is lost, exit 0."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import ServerProcess

pytestmark = pytest.mark.timeout(300)


def _gauge(srv: ServerProcess, name: str) -> float:
    m = re.search(
        rf"^{re.escape(name)}\s+(\S+)$", httpx.get(srv.url + "/metrics", timeout=30).text, re.M
    )
    return float(m.group(1)) if m else 0.0


def test_probes_during_load_then_graceful_drain(tiny_model_dir: Path, tmp_path: Path) -> None:
    srv = ServerProcess(
        tiny_model_dir,
        tmp_path / "server.log",
        startup_delay_s="3",
        max_batch_size="4",
        max_queue="64",
        max_wait_ms="10",
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
        assert _gauge(srv, "gauntlet:requests_while_unready_total") >= 1
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
                accepted = _gauge(srv, "gauntlet:num_requests_waiting") + _gauge(
                    srv, "gauntlet:num_requests_running"
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
