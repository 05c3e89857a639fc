"""horizontal.go behaviour: normalization (legacy and behavior), rate limits with event history,
multi-metric max and partial failures, min/max snapping, and the sync-loop simulator."""

from __future__ import annotations

import pytest

from harness.models._k8s import ModelInputError
from harness.models.hpa import HPAController, convert_desired_replicas_with_rules, simulate

NOW = 1_700_000_000.0


def cpu_hpa(min_r=1, max_r=10, target=50, behavior=None, extra_metrics=()):
    spec = {
        "minReplicas": min_r,
        "maxReplicas": max_r,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target},
                },
            },
            *extra_metrics,
        ],
    }
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "spec": spec}


def pods_and_metrics(n, usage_m, request="1", ready_since=NOW - 3600):
    pods, metrics = [], []
    for i in range(n):
        pods.append(
            {
                "metadata": {"name": f"p{i}"},
                "spec": {
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": request}}}]
                },
                "status": {
                    "phase": "Running",
                    "startTime": "2023-11-14T20:13:20Z",
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": ready_since}
                    ],
                },
            }
        )
        metrics.append(
            {
                "metadata": {"name": f"p{i}"},
                "timestamp": NOW - 5,
                "window": "15s",
                "containers": [{"name": "c", "usage": {"cpu": f"{usage_m}m"}}],
            }
        )
    return pods, metrics


def reconcile(ctl, n, usage_m, now=NOW, **kw):
    pods, metrics = pods_and_metrics(n, usage_m)
    return ctl.reconcile(now, spec_replicas=n, pods=pods, pod_metrics=metrics, **kw)


def test_scale_up_reports_status_fields_and_reason():
    ctl = HPAController(cpu_hpa(target=50))
    d = reconcile(ctl, 3, 900)  # 90 % -> ratio 1.8 -> ceil(5.4) = 6
    assert d.desiredReplicas == 6 and d.rescale
    assert d.reason == "cpu resource utilization (percentage of request) above target"
    assert d.currentMetrics == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": 90, "averageValue": "900m"},
            },
        }
    ]
    conds = {c["type"]: c for c in d.conditions}
    assert conds["AbleToScale"]["reason"] == "SucceededRescale"
    assert conds["ScalingActive"]["reason"] == "ValidMetricFound"
    assert conds["ScalingLimited"]["status"] == "False"


def test_legacy_scale_up_limit_and_too_many():
    assert convert_desired_replicas_with_rules(1, 10, 1, 100) == (
        4,
        "ScaleUpLimit",
        "the desired replica count is increasing faster than the maximum scale rate",
    )
    assert convert_desired_replicas_with_rules(10, 50, 1, 100)[0] == 20
    assert convert_desired_replicas_with_rules(5, 15, 3, 10)[:2] == (10, "TooManyReplicas")
    assert convert_desired_replicas_with_rules(5, 2, 3, 10)[:2] == (3, "TooFewReplicas")
    assert convert_desired_replicas_with_rules(5, 7, 3, 10)[:2] == (7, "DesiredWithinRange")


def test_legacy_downscale_stabilization_keeps_max_of_5_minutes():
    ctl = HPAController(cpu_hpa(max_r=20))
    assert reconcile(ctl, 4, 1000).desiredReplicas == 8  # 200 % -> 8
    d = reconcile(ctl, 8, 100, now=NOW + 60)  # would be 2
    assert d.desiredReplicas == 8 and not d.rescale
    assert {c["type"]: c["reason"] for c in d.conditions}["AbleToScale"] == "ScaleDownStabilized"
    d = reconcile(ctl, 8, 100, now=NOW + 301)  # NOW sample expired, NOW+60 (2) stays
    assert d.desiredReplicas == 2


def test_behavior_default_scale_up_rate_worked_example():
    # reference: default behavior, current 10, desired 50
    #   -> max(10+4, ceil(10*2)) = 20 (ScaleUpLimit)
    ctl = HPAController(cpu_hpa(max_r=100, behavior={}))
    d = reconcile(ctl, 10, 2500)  # 250 % / 50 % -> ratio 5 -> 50
    assert d.desiredReplicas == 20
    assert {c["type"]: c["reason"] for c in d.conditions}["ScalingLimited"] == "ScaleUpLimit"


def test_behavior_rate_limit_uses_event_history():
    beh = {
        "scaleUp": {
            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
            "selectPolicy": "Max",
        }
    }
    ctl = HPAController(cpu_hpa(max_r=100, behavior=beh))
    ctl.load_history({"scaleUpEvents": [{"replicaChange": 2, "timestamp": NOW - 30}]})
    d = reconcile(ctl, 5, 1000)  # wants 10; period start = 5 - 2 = 3 -> limit 5 -> no change
    assert d.desiredReplicas == 5 and not d.rescale
    d = reconcile(ctl, 5, 1000, now=NOW + 31)  # event left the 60 s period -> 5 + 2
    assert d.desiredReplicas == 7 and ctl.history()["scaleUpEvents"][-1]["replicaChange"] == 2


def test_behavior_percent_scale_down_truncates_and_select_min():
    beh = {
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
        }
    }
    ctl = HPAController(cpu_hpa(max_r=100, behavior=beh))
    d = reconcile(ctl, 80, 50)  # wants 8 ; int(80 * 0.9) = 72
    assert d.desiredReplicas == 72
    assert {c["type"]: c["reason"] for c in d.conditions}["ScalingLimited"] == "ScaleDownLimit"
    # 60 s later the period start is 72 + 8 = 80 again... within the period it is
    # 80 - 72 + 8: int(80*0.9) = 72 -> no change
    assert reconcile(ctl, 72, 50, now=NOW + 30).desiredReplicas == 72
    d = reconcile(ctl, 72, 50, now=NOW + 61)  # int(72 * 0.9) = int(64.8) = 64
    assert d.desiredReplicas == 64
    beh_min = {
        "scaleUp": {"selectPolicy": "Min"}
    }  # default policies, least change: min(10+4, 20) = 14
    assert (
        reconcile(HPAController(cpu_hpa(max_r=100, behavior=beh_min)), 10, 2500).desiredReplicas
        == 14
    )
    beh_off = {"scaleUp": {"selectPolicy": "Disabled"}}
    assert (
        reconcile(HPAController(cpu_hpa(max_r=100, behavior=beh_off)), 10, 2500).desiredReplicas
        == 10
    )


def test_behavior_scale_up_stabilization_window():
    beh = {"scaleUp": {"stabilizationWindowSeconds": 120}}
    ctl = HPAController(cpu_hpa(max_r=100, behavior=beh))
    d = reconcile(ctl, 4, 1000)  # initial recommendation 4 is within the up window
    assert d.desiredReplicas == 4
    assert {c["type"]: c["reason"] for c in d.conditions}["AbleToScale"] == "ScaleUpStabilized"
    assert reconcile(ctl, 4, 1000, now=NOW + 121).desiredReplicas == 8


def test_per_direction_tolerance_from_behavior():
    beh = {"scaleUp": {"tolerance": "0.5"}, "scaleDown": {"tolerance": "0.05"}}
    ctl = HPAController(cpu_hpa(max_r=100, behavior=beh))
    assert reconcile(ctl, 4, 700).desiredReplicas == 4  # ratio 1.4 within the 50 % up tolerance
    # ratio 0.9 sits on the default tolerance edge (no change) but is outside a 5 % down tolerance
    assert reconcile(HPAController(cpu_hpa(max_r=100)), 10, 450).desiredReplicas == 10
    ctl = HPAController(
        cpu_hpa(
            max_r=100,
            behavior={"scaleDown": {"stabilizationWindowSeconds": 0, "tolerance": "0.05"}},
        )
    )
    assert reconcile(ctl, 10, 450).desiredReplicas == 9


def test_min_max_snap_and_scaling_disabled():
    ctl = HPAController(cpu_hpa(min_r=2, max_r=5))
    d = reconcile(ctl, 7, 10)
    assert (
        d.desiredReplicas == 5 and d.reason == "Current number of replicas above Spec.MaxReplicas"
    )
    d = reconcile(ctl, 1, 5000)
    assert (
        d.desiredReplicas == 2 and d.reason == "Current number of replicas below Spec.MinReplicas"
    )
    d = ctl.reconcile(NOW, spec_replicas=0, pods=[], pod_metrics=[])
    assert (
        not d.rescale
        and {c["type"]: c["reason"] for c in d.conditions}["ScalingActive"] == "ScalingDisabled"
    )


def test_multiple_metrics_take_max_and_partial_failure_blocks_scale_down():
    ext = {
        "type": "External",
        "external": {
            "metric": {"name": "queue"},
            "target": {"type": "AverageValue", "averageValue": "10"},
        },
    }
    ctl = HPAController(cpu_hpa(max_r=50, extra_metrics=[ext]))
    d = reconcile(
        ctl, 4, 500, custom_metrics={"external": {"queue": [70]}}
    )  # cpu holds 4; queue -> ceil(70/10)=7
    assert d.desiredReplicas == 7 and d.reason == "external metric queue above target"
    # external metric missing and CPU says scale down -> no scaling, error surfaced
    ctl = HPAController(cpu_hpa(max_r=50, extra_metrics=[ext]))
    d = reconcile(ctl, 4, 100)
    assert d.desiredReplicas == 4 and not d.rescale and d.error
    assert {c["type"]: c for c in d.conditions}["ScalingActive"][
        "reason"
    ] == "FailedGetExternalMetric"
    # external missing but CPU says scale up -> proceeds, error kept
    d = reconcile(HPAController(cpu_hpa(max_r=50, extra_metrics=[ext])), 4, 1000)
    assert d.desiredReplicas == 8 and d.error


def test_pods_metric_running_unready_pod_counts_as_ready():
    """Reference 1.4.1: for non-CPU metrics a Running pod with Ready=False still counts."""
    hpa = {
        "spec": {
            "maxReplicas": 20,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "waiting"},
                        "target": {"type": "AverageValue", "averageValue": "4"},
                    },
                }
            ],
        }
    }
    pods, _ = pods_and_metrics(4, 0)
    pods[3]["status"]["conditions"][0]["status"] = "False"
    d = HPAController(hpa).reconcile(
        NOW,
        spec_replicas=4,
        pods=pods,
        pod_metrics=[],
        custom_metrics={"pods": {"waiting": {"p0": 8, "p1": 8, "p2": 8, "p3": 0}}},
    )
    assert d.desiredReplicas == 6  # avg 6 / 4 = 1.5 -> ceil(1.5 * 4)
    assert d.currentMetrics[0]["pods"]["current"]["averageValue"] == "6"


def test_input_errors_name_the_field():
    with pytest.raises(ModelInputError) as e:
        HPAController({"spec": {"maxReplicas": 0}})
    assert e.value.field == "hpa.spec.maxReplicas"
    with pytest.raises(ModelInputError) as e:
        HPAController(
            cpu_hpa(
                behavior={
                    "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 4000}]}
                }
            )
        )
    assert e.value.field == "hpa.spec.behavior.scaleUp.policies[0].periodSeconds"


def test_timestamps_accept_rfc3339_and_epoch():
    ctl = HPAController(cpu_hpa())
    pods, metrics = pods_and_metrics(2, 500)
    metrics[0]["timestamp"] = "2023-11-14T22:13:15.5Z"
    d = ctl.reconcile("2023-11-14T22:13:20Z", spec_replicas=2, pods=pods, pod_metrics=metrics)
    assert d.desiredReplicas == 2


# --- simulator --------------------------------------------------------------------------------

SPIKE_HPA = cpu_hpa(min_r=2, max_r=100, target=65)


def test_simulate_one_hour_100_replicas_work_is_bounded():
    r = simulate(
        SPIKE_HPA,
        traffic=[(0, 50), (600, 480), (2400, 50)],
        capacity_per_replica=5,
        cold_start_s=90,
        duration_s=3600,
    )
    assert r.syncs == 241  # 0, 15, ..., 3600
    assert r.pods_evaluated <= r.syncs * 100  # never more pods than maxReplicas per sync
    assert r.max_replicas == 100 and r.needed_replicas == 96
    assert len(r.timeline) == 241


def test_simulate_spike_breach_and_first_scale_up():
    r = simulate(
        cpu_hpa(min_r=4, max_r=40, target=80),
        traffic=[(0, 20), (300, 100)],
        capacity_per_replica=10,
        cold_start_s=60,
        duration_s=900,
        initial_replicas=4,
    )
    assert r.first_scale_up_s == 300.0  # the first sync that sees the spike
    # 4 ready replicas carry 40 rps < 100 from t=300 until the new pods are ready at 360
    # (+ later ones)
    assert 60.0 <= r.breach_seconds <= 120.0
    assert r.timeline[-1]["ready"] >= r.needed_replicas


def test_simulate_max_replicas_too_low_breaches_forever():
    r = simulate(
        cpu_hpa(min_r=2, max_r=5, target=60),
        traffic=[(0, 100)],
        capacity_per_replica=10,
        cold_start_s=30,
        duration_s=600,
    )
    assert not r.max_replicas_sufficient
    assert r.breach_seconds == pytest.approx(600.0)
