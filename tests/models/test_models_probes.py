"""Kubelet prober model: windows from worker.go semantics, back-off from kuberuntime."""

from __future__ import annotations

import pytest

from harness.models._k8s import ModelInputError
from harness.models.prober import analyze, crashloop_backoff


def deployment(container):
    return {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [container]}}}}


def test_crashloop_backoff_schedule():
    assert [crashloop_backoff(n) for n in range(1, 10)] == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert crashloop_backoff(0) == 0


def test_startup_probe_kill_window_docs_example():
    # docs: failureThreshold 30 x periodSeconds 10 = 300 s budget
    c = {
        "name": "m",
        "startupProbe": {
            "httpGet": {"path": "/healthz"},
            "failureThreshold": 30,
            "periodSeconds": 10,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz"},
            "failureThreshold": 1,
            "periodSeconds": 10,
        },
    }
    a = analyze(deployment(c), "m", [100.0, 290.0, 295.0, 301.5, 400.0])
    assert a.gate == "startup" and a.startup_budget_s == 300
    assert (a.kill_earliest_s, a.kill_latest_s) == (290.0, 301.0)  # D+(F-1)P, D+F*P+T
    assert a.outcomes == ["survives", "survives", "maybe", "killed", "killed"]
    assert a.kill_probabilities[2] == pytest.approx(0.5)
    assert a.killed_fraction == pytest.approx((0 + 0 + 0.5 + 1 + 1) / 5)
    assert a.hang_detect_s == (0.0, 11.0)  # liveness F=1: [0, P+T]
    assert a.grace_period_s == 30


def test_liveness_without_startup_gates_startup_and_initial_delay_counts():
    c = {
        "name": "m",
        "livenessProbe": {
            "initialDelaySeconds": 15,
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
    }
    a = analyze({"spec": {"containers": [c]}}, None, 60.0)
    assert a.gate == "liveness"
    assert (a.kill_earliest_s, a.kill_latest_s) == (35.0, 47.0)
    assert a.outcomes == ["killed"]
    assert any("no startup probe" in n for n in a.notes)
    # never finishing: started, killed at 35 s, restarted at once, then back-off 10, 20, ...
    seq = a.restart_sequence
    assert seq[0] == (0.0, "Started (attempt 1)")
    assert seq[1] == (35.0, "Killing: failed liveness probe, will be restarted")
    assert seq[3] == (35.0, "Started (attempt 2)")
    assert seq[5][1].startswith("BackOff 10s") and seq[6] == (80.0, "Started (attempt 3)")
    assert seq[9] == (135.0, "Started (attempt 4)")  # 115 + 20 s


def test_ready_time_with_startup_and_readiness():
    c = {
        "name": "m",
        "startupProbe": {"periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {"periodSeconds": 10, "successThreshold": 2},
    }
    a = analyze({"spec": {"containers": [c]}}, "m", 42.0)
    # started within one startup period of 42 s; readiness fires at once then needs one more success
    assert a.ready_at_s == (52.0, 57.0)


def test_no_probes_never_killed_and_ready_immediately():
    a = analyze({"containers": [{"name": "m"}]}, None, 500.0)
    assert a.gate is None and a.outcomes == ["survives"] and a.ready_at_s == (0.0, 0.0)
    assert a.restart_sequence == [] and a.hang_detect_s is None


def test_probe_termination_grace_overrides_pod():
    c = {"name": "m", "livenessProbe": {"terminationGracePeriodSeconds": 5}}
    a = analyze({"spec": {"terminationGracePeriodSeconds": 120, "containers": [c]}}, None, 1.0)
    assert a.grace_period_s == 5


def test_backoff_resets_after_ten_minutes_between_crashes():
    c = {
        "name": "m",
        "startupProbe": {"periodSeconds": 10, "failureThreshold": 70},
    }  # killed at 690 s each time
    a = analyze({"spec": {"containers": [c]}}, None, 10_000.0, restart_horizon_s=3000)
    waits = [e for _, e in a.restart_sequence if e.startswith(("BackOff", "Restarting"))]
    assert waits and all(w == "Restarting at once" for w in waits)


def test_input_errors_name_the_field():
    with pytest.raises(ModelInputError) as e:
        analyze(
            {"spec": {"containers": [{"name": "m", "livenessProbe": {"successThreshold": 2}}]}},
            None,
            1,
        )
    assert e.value.field == "containers[m].livenessProbe.successThreshold"
    with pytest.raises(ModelInputError) as e:
        analyze({"spec": {"containers": [{"name": "m"}]}}, "other", 1)
    assert e.value.field == "container"
