"""Upstream pkg/kubelet/prober/worker_test.go cases for ProbeWorker (one doProbe call at a
time), and the kill window of `analyze` checked against the worker driven tick by tick.

Facts (inputs, expected results) are upstream's; the code is this project's. Upstream's test
worker probes a container whose status comes from the test's status manager; here that status
is a ContainerState. TestDoProbe rows are the regular-container ones (restartPolicy Never).
"""

from __future__ import annotations

import pytest

from harness.models.prober import (
    FAILURE,
    SUCCESS,
    UNKNOWN,
    ContainerState,
    Probe,
    ProbeWorker,
    analyze,
    kill_probability,
    worker_kill_time,
)

KINDS = ["liveness", "readiness", "startup"]


def worker(kind, **probe):
    return ProbeWorker(Probe(kind, **probe), restart_policy="Never")


def running(kind, **kw):
    """getTestRunningStatusWithStarted(probeType != startup)."""
    return ContainerState(started=kind != "startup", **kw)


# --- TestDoProbe --------------------------------------------------------------------------------

DO_PROBE_CASES = [
    # name, state, probe kwargs, {kind: keep going}, expected result (None: not set)
    ("running, probe successful", {}, {}, dict.fromkeys(KINDS, True), SUCCESS),
    ("pod failed", {"pod_phase": "Failed"}, {}, dict.fromkeys(KINDS, False), None),
    (
        "pod deleted: liveness/startup set Success and stop, readiness continues",
        {"deleting": True},
        {},
        {"liveness": False, "readiness": True, "startup": False},
        SUCCESS,
    ),
    ("no container status", {"container_id": None}, {}, dict.fromkeys(KINDS, True), None),
    ("container waiting", {"running": False}, {}, dict.fromkeys(KINDS, True), FAILURE),
    (
        "container terminated",
        {"running": False, "terminated": True},
        {},
        dict.fromkeys(KINDS, False),
        FAILURE,
    ),
    ("initial delay passed", {}, {"initial_delay": -100}, dict.fromkeys(KINDS, True), SUCCESS),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("name", "state", "probe", "keep_going", "result"),
    DO_PROBE_CASES,
    ids=[c[0] for c in DO_PROBE_CASES],
)
def test_upstream_do_probe(kind, name, state, probe, keep_going, result):
    w = worker(kind, **probe)
    assert w.do_probe(running(kind, **state), SUCCESS) is keep_going[kind]
    assert w.result == result


def test_upstream_do_probe_without_pod_status_waits():
    w = worker("liveness")
    assert w.do_probe(None, SUCCESS) is True and w.result is None  # TestDoProbe "No status"


# --- TestInitialDelay ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "during_delay"), [("liveness", SUCCESS), ("readiness", FAILURE), ("startup", UNKNOWN)]
)
def test_upstream_initial_delay(kind, during_delay):
    w = worker(kind, initial_delay=10)
    assert w.do_probe(running(kind, running_for_s=0), SUCCESS) and w.result == during_delay
    assert w.do_probe(running(kind, running_for_s=100), SUCCESS)  # "100 seconds later..."
    assert w.result == SUCCESS


def test_initial_delay_truncates_elapsed_seconds():
    # int32(time.Since(startedAt).Seconds()) < initialDelaySeconds: 9.99 s is inside a 10 s delay
    w = worker("readiness", initial_delay=10)
    w.do_probe(running("readiness", running_for_s=9.99), SUCCESS)
    assert w.result == FAILURE
    w.do_probe(running("readiness", running_for_s=10.0), SUCCESS)
    assert w.result == SUCCESS


# --- TestFailureThreshold / TestSuccessThreshold -----------------------------------------------


def test_upstream_failure_threshold():
    w = worker("readiness", success_threshold=1, failure_threshold=3)
    state = running("readiness")
    for _ in range(2):
        assert [w.do_probe(state, SUCCESS) and w.result for _ in range(3)] == [SUCCESS] * 3
        # below the failure threshold the result stays Success
        assert [w.do_probe(state, FAILURE) and w.result for _ in range(2)] == [SUCCESS] * 2
        assert [w.do_probe(state, FAILURE) and w.result for _ in range(3)] == [FAILURE] * 3


def test_upstream_success_threshold():
    w = worker("readiness", success_threshold=3, failure_threshold=1)
    state = running("readiness")
    for _ in range(2):  # "Start out failure": a readiness worker's initial result is Failure
        assert [w.do_probe(state, SUCCESS) and w.result for _ in range(2)] == [FAILURE] * 2
        assert [w.do_probe(state, SUCCESS) and w.result for _ in range(3)] == [SUCCESS] * 3
        assert w.do_probe(state, FAILURE) and w.result == FAILURE  # "Prober flakes"


# --- startup probe thresholds, on hold, result runs ---------------------------------------------


def test_upstream_startup_probe_success_threshold():
    w = worker("startup", success_threshold=1, failure_threshold=3)
    assert not w.on_hold
    assert w.do_probe(running("startup"), SUCCESS) and w.result == SUCCESS
    assert w.on_hold and w.result_run == 0  # "on hold because successThreshold is exceeded"


def test_upstream_startup_probe_failure_threshold():
    w = worker("startup", success_threshold=1, failure_threshold=3)
    seen = []
    for _ in range(3):
        assert not w.on_hold
        w.do_probe(running("startup"), FAILURE)
        seen.append((w.result, w.result_run))
    assert seen == [(UNKNOWN, 1), (UNKNOWN, 2), (FAILURE, 0)]
    assert w.on_hold and w.result_run == 0


@pytest.mark.parametrize("kind", ["liveness", "startup"])
def test_upstream_on_hold_on_liveness_or_startup_check_failure(kind):
    """TestOnHoldOnLivenessOrStartupCheckFailure: results on container restart."""
    w = worker(kind, success_threshold=1, failure_threshold=1)
    assert w.do_probe(running(kind), FAILURE) and w.result == FAILURE and w.on_hold  # first
    assert w.do_probe(running(kind), SUCCESS) and w.result == FAILURE and w.on_hold  # on hold
    restarted = running(kind, container_id="test://newCont_ID")
    assert w.do_probe(restarted, SUCCESS) and w.result == SUCCESS  # lifted
    assert w.on_hold is (kind == "startup")  # a startup probe holds after its success too


def test_new_container_resets_result_to_the_initial_value():
    # worker.go: a new container ID sets initialValue and resumes probing
    for kind, initial in (("liveness", SUCCESS), ("readiness", FAILURE), ("startup", UNKNOWN)):
        w = worker(kind, failure_threshold=1, initial_delay=5)
        w.do_probe(running(kind, running_for_s=60), FAILURE)
        assert w.result == FAILURE
        w.do_probe(running(kind, container_id="containerd://c2", running_for_s=0), FAILURE)
        assert w.result == initial and not w.on_hold


def test_upstream_result_run_on_liveness_check_failure():
    w = worker("liveness", success_threshold=1, failure_threshold=3)
    steps = [
        (SUCCESS, SUCCESS, 1),
        (FAILURE, SUCCESS, 1),
        (FAILURE, SUCCESS, 2),
        (FAILURE, FAILURE, 0),
    ]
    for outcome, result, run in steps:
        assert w.do_probe(running("liveness"), outcome)
        assert (w.result, w.result_run) == (result, run)


def test_upstream_result_run_on_startup_check_failure():
    w = worker("startup", success_threshold=1, failure_threshold=3)
    for result, run in [(UNKNOWN, 1), (UNKNOWN, 2), (FAILURE, 0)]:
        assert w.do_probe(running("startup"), FAILURE)
        assert (w.result, w.result_run) == (result, run)


def test_upstream_liveness_probe_disabled_by_started():
    w = worker("liveness", success_threshold=1, failure_threshold=1)
    w.do_probe(ContainerState(started=False), FAILURE)
    assert w.result == SUCCESS  # "Not started, probe failure, result success"
    w.do_probe(ContainerState(started=True), FAILURE)
    assert w.result == FAILURE  # "Started, probe failure, result failure"


def test_upstream_startup_probe_disabled_by_started():
    w = worker("startup", success_threshold=1, failure_threshold=2)
    w.do_probe(ContainerState(started=False), FAILURE)
    assert w.result == UNKNOWN  # "Not started, probe failure, result unknown"
    w.do_probe(ContainerState(started=False), SUCCESS)
    assert w.result == SUCCESS  # "Not started, probe success, result success"
    w.do_probe(ContainerState(started=True), FAILURE)
    assert w.result == SUCCESS  # "Started, probe failure, result success"


# --- analyze's kill window against the worker, tick by tick ------------------------------------

PHASES = 40


@pytest.mark.parametrize(
    "container",
    [
        {
            "name": "m",
            "startupProbe": {"periodSeconds": 10, "failureThreshold": 30},
            "livenessProbe": {"periodSeconds": 10, "failureThreshold": 3},
        },
        {
            "name": "m",
            "livenessProbe": {
                "initialDelaySeconds": 15,
                "periodSeconds": 10,
                "failureThreshold": 3,
                "timeoutSeconds": 2,
            },
        },
        {
            "name": "m",
            "startupProbe": {"initialDelaySeconds": 20, "periodSeconds": 5, "failureThreshold": 4},
        },
    ],
)
def test_kill_window_matches_the_worker_for_every_ticker_phase(container):
    loads = [x / 2 for x in range(0, 2 * 340)]
    a = analyze({"spec": {"containers": [container]}}, "m", loads)
    assert a.gate is not None  # every container here has a probe gating the kill
    g = a.probes[a.gate]
    gate = Probe(
        a.gate,
        initial_delay=g["initialDelaySeconds"],
        period=g["periodSeconds"],
        timeout=g["timeoutSeconds"],
        failure_threshold=int(g["failureThreshold"]),
    )
    for load, outcome, p_kill in zip(loads, a.outcomes, a.kill_probabilities, strict=True):
        kills = [worker_kill_time(gate, load, gate.period * i / PHASES) for i in range(PHASES)]
        killed = [k for k in kills if k is not None]
        if killed:
            assert a.kill_earliest_s is not None and a.kill_latest_s is not None, (load, killed)
            assert all(a.kill_earliest_s <= k <= a.kill_latest_s for k in killed), (load, killed)
        if outcome == "survives":
            assert not killed, load
        elif outcome == "killed":
            assert len(killed) == PHASES, load
        assert len(killed) / PHASES == pytest.approx(p_kill, abs=1 / PHASES + 1e-9), load
        assert kill_probability(load, gate) == p_kill
