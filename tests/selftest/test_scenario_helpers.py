"""Fast tests of the scenario arithmetic (no backend): percentiles, budgets, recovery, flapping."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from selftest_matrix import MATRIX

from harness.backends.base import Backend
from harness.backends.observe import (
    Condition,
    ContainerState,
    ContainerStatus,
    Pod,
    ResourceSample,
    StateRunning,
)
from harness.manifests.bundle import ManifestBundle
from harness.profile import load_profile
from harness.scenarios import SCENARIOS, common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.cold_start import start_record
from harness.scenarios.hpa import first_scale_up, flapping
from harness.scenarios.probe_timing import model_checks
from harness.scenarios.zone_failure import choose_zone, recovery_after, sla_windows

REPO = Path(__file__).resolve().parents[2]


def test_percentile_nearest_rank() -> None:
    assert common.percentile([], 95) is None
    assert common.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert common.percentile(list(range(1, 101)), 95) == 95
    assert common.percentile([7.0], 95) == 7.0


def test_error_budget_allowed_vs_burned() -> None:
    slo = load_profile("local").slo  # 99.95 %
    b = common.error_budget(10_000, 2, slo)
    assert b["allowed_errors"] == pytest.approx(5.0)
    assert b["burned"] == pytest.approx(0.4)
    assert b["budget_minutes_per_30d"] == pytest.approx(21.6)
    assert common.error_budget(0, 0, slo)["burned"] == 0.0
    assert common.error_budget(0, 1, slo)["burned"] is None  # infinite burn


def test_flapping_counts_direction_changes() -> None:
    assert flapping([(0, 3), (1, 6), (2, 6), (3, 5), (4, 4)]) == 1  # up then down: one change
    assert flapping([(0, 6), (1, 5), (2, 4)]) == 0
    assert flapping([(0, 6), (1, 5), (2, 6), (3, 5)]) == 2


def test_recovery_is_first_window_after_last_breach() -> None:
    t_fault = 100.0
    windows = [
        {"epoch0": 95.0, "after_fault": False, "contains_fault": False, "sla_met": True},
        {"epoch0": 100.0, "after_fault": True, "contains_fault": True, "sla_met": False},
        {"epoch0": 105.0, "after_fault": True, "contains_fault": False, "sla_met": False},
        {"epoch0": 110.0, "after_fault": True, "contains_fault": False, "sla_met": True},
        {"epoch0": 115.0, "after_fault": True, "contains_fault": False, "sla_met": True},
    ]
    assert recovery_after(windows, t_fault) == 10.0
    windows[-1]["sla_met"] = False
    assert recovery_after(windows, t_fault) is None  # still breaching at the end
    assert recovery_after([{**w, "sla_met": True} for w in windows], t_fault) == 0.0


def test_sla_windows_place_the_breach_against_the_fault(tmp_path: Path) -> None:
    import numpy as np

    from harness.load import LoadSpec
    from harness.load import records as R
    from harness.load.analyze import build_result

    prof = load_profile("local")  # p90 300 ms, 5 s windows
    spec = LoadSpec(target="http://127.0.0.1:1", rate_rps=10, duration_s=20, arrival="constant")
    rec = R.empty(200)
    rec["intended"] = np.arange(200) / 10
    rec["sent"] = rec["intended"]
    rec["done"] = rec["intended"] + np.where(
        (rec["intended"] >= 5) & (rec["intended"] < 10), 0.9, 0.05
    )
    rec["status"] = 200
    t0 = 1_700_000_000.0
    result = build_result(spec, rec, started_at=t0, duration_s=20)
    result.attach_records(rec)

    def no_backend(_: Path) -> Backend:
        raise AssertionError("sla_windows makes no backend")

    ctx = ScenarioContext(
        profile=prof,
        bundle=ManifestBundle([], source="t"),
        backend_factory=no_backend,
        backend_name="none",
        out_dir=tmp_path,
    )
    windows = sla_windows(ctx, result, t_fault=t0 + 6)
    assert [w["t0"] for w in windows] == [0, 5, 10, 15]
    assert [w["sla_met"] for w in windows] == [True, False, True, True]
    assert (
        windows[1]["contains_fault"] and windows[2]["after_fault"] and not windows[0]["after_fault"]
    )
    assert "latency p90" in windows[1]["breaches"][0]
    assert recovery_after(windows, t0 + 6) == 4.0


def test_choose_zone_most_replicas_then_name() -> None:
    assert choose_zone({"zone-a": ["p1"], "zone-b": ["p2", "p3"]}, None) == "zone-b"
    assert choose_zone({"zone-b": ["p2"], "zone-a": ["p1"]}, None) == "zone-a"
    assert choose_zone({}, None) is None
    assert choose_zone({"zone-a": ["p"]}, "zone-c") == "zone-c"


def test_start_record_phases() -> None:
    pod = Pod(
        name="p",
        creationTimestamp=10.0,
        conditions=[
            Condition(type="PodScheduled", status="True", lastTransitionTime=10.5),
            Condition(type="Ready", status="True", lastTransitionTime=19.0),
        ],
        containerStatuses=[
            ContainerStatus(
                name="c",
                started=True,
                ready=True,
                state=ContainerState(running=StateRunning(startedAt=11.0)),
            )
        ],
    )
    rec = start_record(pod, started_flip=18.8)
    assert rec["ready"] is True
    assert rec["phases"] == {
        "scheduling": 0.5,
        "init_containers": 0.0,
        "container_start": 0.5,
        "startup_probe": 7.8,
        "readiness": 0.2,
        "total": 9.0,
    }
    # with init containers, their time is its own phase (Initialized flips after the last one)
    pod.initContainerStatuses = [ContainerStatus(name="fetch-model", ready=True)]
    pod.conditions.append(Condition(type="Initialized", status="True", lastTransitionTime=10.9))
    assert start_record(pod, started_flip=18.8)["phases"]["init_containers"] == 0.4
    assert start_record(pod, started_flip=18.8)["phases"]["container_start"] == 0.1


class _Event:
    def __init__(self, t: float, msg: str) -> None:
        self.firstTimestamp = t
        self.message = msg


def test_first_scale_up_prefers_events() -> None:
    ev = [
        _Event(50.0, "New size: 3; reason: cpu below target"),
        _Event(70.0, "New size: 6; reason: above target"),
    ]
    assert first_scale_up(ev, [], initial=3, since=60.0) == 70.0
    assert first_scale_up([], [], initial=3, since=60.0) is None


def _ctx(tmp_path: Path, manifests: str) -> ScenarioContext:
    from harness.manifests import render

    bundle = render.render(REPO / manifests)
    if not isinstance(bundle, ManifestBundle):  # render may return (bundle, info)
        bundle = bundle[0]

    def no_backend(_: Path):
        raise AssertionError("model checks must not deploy")

    return ScenarioContext(
        profile=load_profile("local"),
        bundle=bundle,
        backend_factory=no_backend,
        backend_name="none",
        out_dir=tmp_path,
    )


def test_probe_model_flags_liveness_without_startup(tmp_path: Path) -> None:
    bad = model_checks(
        _ctx(tmp_path, "manifests/broken/liveness-no-startup"),
        _ctx(tmp_path, "manifests/broken/liveness-no-startup").bundle,
    )
    (check,) = bad["checks"]
    assert not check.ok and bad["probe_model"]["gate"] == "liveness"
    ctx = _ctx(tmp_path, "manifests/overlays/local")
    good = model_checks(ctx, ctx.bundle)
    assert good["checks"][0].ok, good["checks"][0]
    ctx.measured["cold_start_s"] = [40.0, 41.0, 42.0]  # measured slower than the 44 s budget / 1.5
    slow = model_checks(ctx, ctx.bundle)
    assert not slow["checks"][0].ok and "measured" in slow["cold_start_source"]


def test_cpu_throttling_from_cumulative_cfs_counters() -> None:
    def s(t: float, pod: str, periods: int, throttled: int, secs: float) -> ResourceSample:
        return ResourceSample(
            time=t,
            pod=pod,
            cpu_periods=periods,
            cpu_throttled_periods=throttled,
            cpu_throttled_s=secs,
        )

    samples = [
        s(0, "a", 1000, 100, 1.0),
        s(0, "b", 50, 0, 0.0),
        s(10, "a", 1100, 150, 3.5),
        s(10, "b", 150, 10, 0.5),
        ResourceSample(time=10, pod="c", cpu_cores=0.2),
    ]
    out = common.cpu_throttling(samples)
    assert out == {
        "cpu_throttled_ratio": 0.3,
        "cpu_throttled_s": 3.0,
        "cpu_throttled_worst_pod": "a",
        "cpu_throttled_worst_ratio": 0.5,
    }
    assert (
        common.cpu_throttling([ResourceSample(time=0, pod="a", cpu_cores=1.0)]) == {}
    )  # no CFS statistics


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_declared_checks_are_every_check_the_scenario_can_report(scenario: str) -> None:
    """`CHECKS` names one pytest result per check (scenarios/test_*.py): it must list every check
    the module can report, and only those; the self-test matrix names only declared ones."""
    module = importlib.import_module(SCENARIOS[scenario].split(":")[0])
    source = inspect.getsource(module)
    found = set(re.findall(r'(?:name=|_check\(|speed\()"([a-z0-9_]+)"', source))
    if "common.rollout_ready_check(" in source:
        found.add("rollout_ready")
    if re.search(r"common\.load_validity_check\(\w+\)", source):
        found.add("load_valid")
    assert sorted(module.CHECKS) == sorted(found)
    assert len(set(module.CHECKS)) == len(module.CHECKS)
    for case in (c for c in MATRIX if c.scenario == scenario):
        assert {case.fails_on, *case.explained} <= set(module.CHECKS), case.variant
