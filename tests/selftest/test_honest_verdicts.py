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
from harness.profile import SPIKE_CEILING_SHARE, SPIKE_EXTRA_REPLICAS, load_profile
from harness.scenarios import capacity, oom_headroom, zone_failure
from harness.scenarios.base import ScenarioContext

REPO = Path(__file__).resolve().parents[2]
BASE = load_profile("local").load.baseline_rps  # what the good overlay's 2 replicas must carry


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
    spike = load_profile("local").spike.model_copy(update={"factor": 5.0})
    rate, why = spike.rate(14, capacity=200.0, initial=2)  # 5 x 14 would fit: raised
    assert rate == pytest.approx(200.0 * (2 + SPIKE_EXTRA_REPLICAS)) and "raised" in why
    rate, _ = spike.rate(14, capacity=10.0, initial=2)  # 70 > 2.15 x 10: kept
    assert rate == 70
    assert spike.rate(14, capacity=None, initial=2)[0] == 70
    # on a machine where the spike is more than maxReplicas - 1 carry (one replica of
    # headroom), the hpa scenario asks for the least spike that still needs scaling...
    rate, why = spike.rate(14, capacity=10.0, initial=2, max_replicas=4)
    assert 30 * SPIKE_CEILING_SHARE < 70 and "maxReplicas 4" in why and "lowered" in why
    assert rate == pytest.approx(10.0 * (2 + SPIKE_EXTRA_REPLICAS))
    # ...unless that ceiling needs no more than the initial replicas: the spike stays
    assert spike.rate(14, capacity=10.0, initial=2, max_replicas=3)[0] == 70
    assert spike.rate(14, capacity=10.0, initial=2, max_replicas=2)[0] == 70


def test_the_spike_floor_is_sized_from_where_the_slo_broke() -> None:
    """A sweep's capacity is up to a step below the truth; the floor takes the step that broke,
    so that 2 replicas cannot carry 2.15 x a capacity measured a step low (a CI run's
    maxreplicas-too-low: 2 replicas held 88.5 req/s against 2.15 x 40.79)."""
    spike = load_profile("local").spike
    rate, why = spike.rate(14, capacity=40.79, initial=2, max_replicas=4, broke_at=48.7)
    assert rate == pytest.approx(48.7 * (2 + SPIKE_EXTRA_REPLICAS)) and rate > 2 * 44.25
    assert "where one replica's SLO broke; it held at 40.79" in why
    # the ceiling (what maxReplicas - 1 carry) is sized from the same rate: a slow machine's
    # spike of 3.5 x 7 = 24.5 is lowered to the floor from 5.5 (held at 4.61)
    rate, why = spike.rate(7, capacity=4.61, initial=2, max_replicas=4, broke_at=5.5)
    assert rate == pytest.approx(5.5 * (2 + SPIKE_EXTRA_REPLICAS)) and "lowered" in why
    # a floor at or below the baseline (the initial replicas cannot carry even that) is not
    # a spike: the factor's rate stays (a slow machine's 9.63 "spike" under a 14 req/s baseline)
    assert spike.rate(14, capacity=3.84, initial=2, max_replicas=4, broke_at=4.48)[0] == 49
    # a broke_at at or below capacity (none measured) changes nothing
    assert spike.rate(14, 40.79, 2, 4, broke_at=None) == spike.rate(14, 40.79, 2, 4, 40.0)


def test_vllm_admission_capacity_comes_from_its_own_flags() -> None:
    held, how = oom_headroom.admission_capacity(_ctx("manifests/vllm/local"))
    assert held == 64 and "--max-num-queued-reqs=64" in how  # running + waiting, vLLM's cap


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


# capacity: the verdict follows what the sweep could observe -----------------------------------


@pytest.mark.parametrize(
    ("cap", "outcome", "measured"),
    [
        (capacity.Capacity(BASE * 2.1, "swept"), "met", 1),  # the baseline fits one replica
        (capacity.Capacity(BASE * 0.4, "swept"), "failed", 3),  # needs 3 of the Deployment's 2
        # broke at the first step: only "< 0.22 x baseline" is known; even that needs more than 2
        (capacity.Capacity(BASE * 0.22, "swept", upper_bound=True), "failed", ">= 5"),
        # "< 0.7 x baseline" might be 0.6 x (2 replicas) or 0.1 x (10): the sweep could not tell
        (capacity.Capacity(BASE * 0.7, "swept", upper_bound=True), "inconclusive", ">= 2"),
        (capacity.Capacity(None, "could not be measured"), "inconclusive", None),
    ],
)
def test_replicas_for_baseline_is_judged_on_what_the_sweep_saw(
    cap: capacity.Capacity, outcome: str, measured: object
) -> None:
    check = capacity.replicas_check(_ctx(), cap)
    assert (check.outcome, check.measured, check.target) == (outcome, measured, 2), check.note


def test_saturation_is_named_from_the_evidence() -> None:
    from harness.load.result import WindowStats

    ctx = _ctx()
    ctx.profile = load_profile("local-stream")  # the one with a goodput SLO
    w = WindowStats(
        t0=0.0, t1=4.0, scheduled=100, requests=80, ok=80, errors={}, dropped=0,
        availability=1.0, latency_ms={}, rate_rps=20.0,
    )  # fmt: skip
    signs = capacity._saturation_signs(w, 0.8, 200.0, 50.0, (5.0, 1.0), 0.5, ctx)
    assert [s.split()[0] for s in signs] == ["achieved", "the", "TTFT", "goodput"]
    quiet = capacity._saturation_signs(w, 1.0, 60.0, 50.0, (1.0, 0.0), 1.0, ctx)
    assert quiet == []  # one request waiting a step, TTFT within noise: not saturated
    assert capacity._saturation_signs(w, 1.0, None, None, (3.0, 3.0), None, ctx) == []


def test_hpa_takes_the_capacity_scenarios_result_before_measuring_again() -> None:
    ctx = _ctx()
    ctx.measured["capacity"] = capacity.Capacity(21.5, "swept")
    got = capacity.capacity_per_replica(ctx)  # backend_factory is None: measuring would raise
    assert got.rps == 21.5 and "capacity scenario" in got.source


def test_a_sweep_broken_at_its_first_step_is_swept_again_below_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow replica gets a measured capacity from a lower sweep, not only an upper bound."""
    from types import SimpleNamespace

    from harness.verdict import Check

    backend = SimpleNamespace(
        pods=lambda: [SimpleNamespace(name="p-0", ready=True)],
        pod_url=lambda pod: "http://127.0.0.1:9/",
    )
    burst = SimpleNamespace(ok=144, duration_s=3.0, errors={})  # 48 req/s saturated
    monkeypatch.setattr(capacity.common, "run_load", lambda *a, **k: burst)
    starts: list[float] = []
    valid = Check(name="load_valid", measured=True, target=True, ok=True)

    def sweep(ctx: Any, be: Any, target: Any, kw: Any, start: float, sw: Any, run: str) -> Any:
        starts.append(round(start, 2))
        # the SLO holds up to 11 req/s: the first sweep (from 14.4) breaks at once
        rows, best = [], None
        for i in range(sw.steps):
            rate = start + i * start * (1 / capacity.SWEEP_FROM - 1) / (sw.steps - 1)
            rows.append({"requested_rps": rate, "breaches": [] if rate <= 11 else ["p90"]})
            if rate > 11:
                break
            best = rate
        return capacity._Swept(rows, best, rows[-1]["requested_rps"], "", None, [valid])

    monkeypatch.setattr(capacity, "_sweep", sweep)
    cap = capacity.measure(_ctx(), backend, capacity.FULL)  # type: ignore[arg-type]
    assert starts == [14.4, 4.32]
    assert not cap.upper_bound and cap.rps is not None and 10 <= cap.rps <= 11
    assert "again from 4.3 req/s" in cap.source and cap.validity is valid
    assert cap.sweep[0]["breaches"] and not any(r["breaches"] for r in cap.sweep[1:-1])


def test_a_break_counts_only_when_it_lasts_to_the_top_of_the_sweep() -> None:
    # a CI run sized hpa's spike from a break at 18.6 req/s per replica, and the 2 initial
    # replicas held 2.15 x that over the whole spike: hpa had nothing to judge
    lasting = capacity.lasting_break
    assert lasting([(14.1, False), (18.6, True), (24.5, False), (32.3, True), (42.6, True)]) == 32.3
    assert lasting([(14.1, False), (18.6, True), (24.5, False)]) is None
    assert lasting([(14.1, True), (18.6, True)]) == 14.1
    assert lasting([]) is None


def test_service_scaling_needs_a_sweep_to_measure_it(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "scenarios/profiles/local.yaml").read_text())
    data["capacity"] = {"service_scaling_min": 0.8}
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        load_profile(bad)
    assert "service_sweep" in str(err.value) and str(bad) in str(err.value)


@pytest.mark.parametrize(
    ("service", "outcome", "ratio"),
    [
        (capacity.Capacity(36.0, "swept"), "met", 0.9),  # 36 of 2 x 20
        (capacity.Capacity(24.0, "swept"), "failed", 0.6),  # the path to the replicas takes 40 %
        (capacity.Capacity(24.0, "swept", upper_bound=True), "inconclusive", None),
        (capacity.Capacity(None, "could not be measured"), "inconclusive", None),
    ],
)
def test_service_scaling_is_the_service_over_replicas_times_one(
    monkeypatch: pytest.MonkeyPatch, service: capacity.Capacity, outcome: str, ratio: Any
) -> None:
    """The Service's capacity against replicas x one replica's, judged when the profile sets
    a minimum; an unmeasured or only bounded one is inconclusive, never a pass."""
    ctx = _ctx()
    ctx.profile = ctx.profile.model_copy(
        update={
            "capacity": ctx.profile.capacity.model_copy(
                update={"service_sweep": True, "service_scaling_min": 0.8}
            )
        }
    )
    monkeypatch.setattr(capacity, "measure_service", lambda c: (service, 2))
    meas: dict[str, Any] = {}
    check = capacity.service_scaling(ctx, capacity.Capacity(20.0, "swept"), meas)
    assert check.outcome == outcome and check.measured == ratio
    assert meas["service_scaling"] == ratio and meas["service_capacity_rps"] == service.rps
