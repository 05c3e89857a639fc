"""Checks that could not fail now can: the pieces, without a backend (fast)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import InputError
from harness.manifests.render import render
from harness.profile import load_profile
from harness.scenarios import hpa, oom_headroom, zone_failure
from harness.scenarios.base import ScenarioContext

REPO = Path(__file__).resolve().parents[2]


def _ctx(manifests: str = "manifests/overlays/local") -> ScenarioContext:
    return ScenarioContext(
        profile=load_profile("local"),
        bundle=render(REPO / manifests),
        backend_factory=None,  # type: ignore[arg-type]
        backend_name="local",
        out_dir=Path("/nonexistent"),
    )


@pytest.mark.parametrize("field", ["max_breach_s", "scale_out_s"])
def test_an_allowance_as_long_as_the_spike_is_refused(tmp_path: Path, field: str) -> None:
    data = yaml.safe_load((REPO / "scenarios/profiles/local.yaml").read_text())
    data["spike"][field] = data["spike"]["spike_s"]
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        load_profile(bad)
    text = str(err.value)
    assert str(bad) in text and "spike" in text and field in text and "spike_s" in text


def test_shipped_profiles_leave_room_for_a_failure() -> None:
    for name in ("local", "seed"):
        sp = load_profile(name).spike
        assert sp.max_breach_s < sp.spike_s and sp.scale_out_s < sp.spike_s


def test_the_spike_always_needs_more_than_the_initial_replicas() -> None:
    rate, why = hpa.size_spike(14, 5, capacity=200.0, initial=2)  # 5 x 14 would fit: raised
    assert rate == pytest.approx(200.0 * (2 + hpa.SPIKE_EXTRA_REPLICAS)) and "raised" in why
    rate, _ = hpa.size_spike(14, 5, capacity=10.0, initial=2)  # 70 > 2.3 x 10: kept
    assert rate == 70
    assert hpa.size_spike(14, 5, capacity=None, initial=2)[0] == 70


def test_admission_capacity_and_drain_timing_come_from_the_manifest() -> None:
    held, how = oom_headroom.admission_capacity(_ctx())
    assert held == 16 + 16 and "GAUNTLET_MAX_NUM_SEQS=16" in how and "GAUNTLET_MAX_QUEUE=16" in how
    good = zone_failure.drain_timing(_ctx())
    bad = zone_failure.drain_timing(_ctx("manifests/broken/grace-shorter-than-drain"))
    # the in-flight work outlasts the broken grace period, and fits a correct drain
    assert bad["grace_s"] < bad["work_s"] <= good["pre_stop_s"] + good["drain_timeout_s"]
    assert good["work_s"] < good["grace_s"]


class _Backend:
    name = "fake"

    def __init__(self, url: str, enforced: bool = True) -> None:
        self.url = url
        self.limits_enforced = enforced

    def pod_url(self, pod: str) -> str:
        return self.url


def test_oom_zero_kills_is_inconclusive_where_limits_are_not_enforced() -> None:
    unenforced = oom_headroom.oom_check(_Backend("", enforced=False), [])  # type: ignore[arg-type]
    assert unenforced.inconclusive and not unenforced.ok
    enforced = oom_headroom.oom_check(_Backend(""), [])  # type: ignore[arg-type]
    assert enforced.ok and not enforced.inconclusive
    killed = oom_headroom.oom_check(_Backend("", enforced=False), ["OOMKilled"])  # type: ignore[arg-type]
    assert killed.failed


class _Server(ThreadingHTTPServer):
    mode = "served"  # how _Handler answers: served | refused | failed | cut


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        mode = self.server.mode
        if mode == "cut":  # accepted, then the connection dies without an answer
            self.connection.close()
            return
        code = {"served": 200, "refused": 503, "failed": 500}[mode]
        body = b'{"usage": {"completion_tokens": 4}}'
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        ("served", "served"),
        ("refused", "refused_status"),
        ("failed", "accepted_then_failed"),
        ("cut", "accepted_then_cut"),
    ],
)
def test_drain_requests_are_classified(server: _Server, mode: str, outcome: str) -> None:
    server.mode = mode
    backend = _Backend(f"http://127.0.0.1:{server.server_port}")
    got = zone_failure._long_request(backend, "pod", {"prompt": "x"})  # type: ignore[arg-type]
    assert got["outcome"] == outcome
    assert (outcome in zone_failure.REFUSED) == (mode == "refused")


def test_a_refused_connection_is_not_a_lost_request() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got = zone_failure._long_request(_Backend(f"http://127.0.0.1:{port}"), "pod", {})  # type: ignore[arg-type]
    assert got["outcome"] == "refused_connection" and got["outcome"] in zone_failure.REFUSED
