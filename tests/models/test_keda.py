"""harness.models.keda against KEDA's sources and documented defaults (kedacore/keda:
controllers/keda/hpa.go, apis/keda/v1alpha1/scaledobject_types.go, pkg/scalers/prometheus_scaler.go,
pkg/scaling/executor/scale_scaledobjects.go)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness.models import keda, keda_loop, promql_selector
from harness.models._k8s import ModelInputError


def so(**spec: Any) -> dict[str, Any]:
    """The prometheus example of KEDA's docs (scalers/prometheus), with spec overrides."""
    base: dict[str, Any] = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "prometheus-scaledobject", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": "my-deployment"},
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": "http://prometheus.monitoring.svc:9090",
                        "query": 'sum(rate(http_requests_total{deployment="my-deployment"}[2m]))',
                        "threshold": "100.50",
                        "activationThreshold": "5.5",
                    },
                }
            ],
        },
    }
    base["spec"].update(spec)
    return base


def test_generated_hpa_with_keda_defaults() -> None:
    hpa = keda.hpa_for(so())
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["metadata"]["name"] == "keda-hpa-prometheus-scaledobject"
    assert hpa["metadata"]["namespace"] == "default"
    assert hpa["metadata"]["labels"] == {
        "app.kubernetes.io/name": "keda-hpa-prometheus-scaledobject",
        "app.kubernetes.io/part-of": "prometheus-scaledobject",
        "app.kubernetes.io/managed-by": "keda-operator",
    }
    spec = hpa["spec"]
    # GetHPAMinReplicas: minReplicaCount unset (0) -> 1; GetHPAMaxReplicas: default 100
    assert spec["minReplicas"] == 1 and spec["maxReplicas"] == 100
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "my-deployment",
    }
    assert "behavior" not in spec  # nil: the HPA's defaults
    # s<index>-prometheus, AverageValue = threshold in milli-units (GetMetricTargetMili)
    assert spec["metrics"] == [
        {
            "type": "External",
            "external": {
                "metric": {
                    "name": "s0-prometheus",
                    "selector": {
                        "matchLabels": {"scaledobject.keda.sh/name": "prometheus-scaledobject"}
                    },
                },
                "target": {"type": "AverageValue", "averageValue": "100500m"},
            },
        }
    ]
    parsed = keda.parse(so()).spec
    assert parsed.polling_interval_s == 30 and parsed.cooldown_period_s == 300
    assert parsed.initial_cooldown_period_s == 0 and parsed.min_replica_count == 0


def test_behavior_name_value_type_and_resource_triggers_pass_through() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    obj = so(
        minReplicaCount=2,
        maxReplicaCount=7,
        advanced={"horizontalPodAutoscalerConfig": {"name": "custom-hpa", "behavior": behavior}},
    )
    obj["spec"]["triggers"][0]["metricType"] = "Value"
    obj["spec"]["triggers"].insert(
        0, {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    )
    obj["metadata"]["labels"] = {"team": "a"}
    obj["metadata"]["annotations"] = {"note": "x"}
    hpa = keda.hpa_for(obj)
    assert hpa["metadata"]["name"] == "custom-hpa"
    assert hpa["metadata"]["labels"]["team"] == "a"
    assert hpa["metadata"]["annotations"] == {"note": "x"}
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 7
    assert hpa["spec"]["behavior"] == behavior
    # sorted by type (External < Resource); the prometheus trigger keeps its index 1
    ext, cpu = hpa["spec"]["metrics"]
    assert ext["external"]["metric"]["name"] == "s1-prometheus"
    assert ext["external"]["target"] == {"type": "Value", "value": "100500m"}
    assert cpu == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
    }


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"pollingInterval": 0}, "spec.pollingInterval", "greater than or equal to 1"),
        ({"minReplicaCount": 5, "maxReplicaCount": 3}, "spec", "must be less than"),
        ({"minReplicaCount": 1, "idleReplicaCount": 1}, "spec", "IdleReplicaCount=1"),
        ({"pollingIntervall": 5}, "spec.pollingIntervall", "unknown field"),
        ({"triggers": []}, "spec.triggers", "at least 1"),
    ],
)
def test_bad_spec_names_field(change: dict, field: str, words: str) -> None:
    with pytest.raises(ModelInputError) as err:
        keda.parse(so(**change))
    assert err.value.field == field and words in err.value.message
    assert err.value.fix and "keda" in err.value.fix.lower()


def test_bad_triggers_name_field() -> None:
    obj = so()
    del obj["spec"]["triggers"][0]["metadata"]["threshold"]
    with pytest.raises(ModelInputError) as err:
        keda.parse(obj)
    assert err.value.field == "spec.triggers[0].metadata.threshold"
    obj = so()
    obj["spec"]["triggers"][0]["type"] = "kafka"
    with pytest.raises(ModelInputError) as err:
        keda.parse(obj)
    assert err.value.field == "spec.triggers[0].type" and "not modelled" in err.value.message
    only_cpu = so()
    only_cpu["spec"]["triggers"] = [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}
    ]
    with pytest.raises(ModelInputError) as err:  # the webhook's rule
        keda.parse(only_cpu)
    assert "only cpu/memory triggers" in err.value.message


def test_quantity_is_milli_when_fractional() -> None:
    assert keda.quantity(2) == "2" and keda.quantity(0.5) == "500m"
    assert keda.quantity(float("nan")) == "0" and keda.quantity(-3) == "0"


def test_prometheus_activity_and_null_values() -> None:
    t = keda.parse(so()).spec.triggers[0]
    assert not keda_loop.read_prometheus(0, t, 5.5).active  # val > activationThreshold, strictly
    assert keda_loop.read_prometheus(0, t, 5.6).active
    empty = keda_loop.read_prometheus(0, t, None)  # ignoreNullValues default true: 0
    assert empty.value == 0.0 and not empty.active and empty.error is None
    strict = copy.deepcopy(so())
    strict["spec"]["triggers"][0]["metadata"]["ignoreNullValues"] = "false"
    t2 = keda.parse(strict).spec.triggers[0]
    assert keda_loop.read_prometheus(0, t2, None).error


def _reading(active: bool) -> list[keda_loop.TriggerReading]:
    return [keda_loop.TriggerReading("s0-prometheus", 9.0 if active else 0.0, active)]


def test_scale_loop_activation_and_cooldown_to_zero() -> None:
    """minReplicaCount 0: inactive at creation -> 0 at once (initialCooldownPeriod 0); active at
    0 -> 1; inactive again -> kept until lastActiveTime + cooldownPeriod has passed."""
    loop = keda_loop.ScaleLoop(keda.parse(so(cooldownPeriod=60)), created_at=0.0)
    r = loop.request_scale(30.0, 3, _reading(False))
    assert r.replicas == 0 and r.event == "KEDAScaleTargetDeactivated"
    r = loop.request_scale(60.0, 0, _reading(True))
    assert r.replicas == 1 and r.event == "KEDAScaleTargetActivated" and loop.last_active == 60
    r = loop.request_scale(90.0, 3, _reading(True))  # the HPA's range: KEDA leaves it
    assert r.replicas is None and loop.last_active == 90
    for now in (120.0, 150.0):  # 90 + 60 = 150 is not yet before now
        r = loop.request_scale(now, 3, _reading(False))
        assert r.replicas is None and r.active_reason == "ScalerCooldown"
    r = loop.request_scale(150.5, 3, _reading(False))
    assert r.replicas == 0


def test_scale_loop_initial_cooldown_and_idle_and_min() -> None:
    loop = keda_loop.ScaleLoop(keda.parse(so(initialCooldownPeriod=100)), created_at=0.0)
    assert loop.request_scale(30.0, 2, _reading(False)).replicas is None
    assert loop.request_scale(130.0, 2, _reading(False)).replicas == 0
    # idleReplicaCount 0 with minReplicaCount 2: active at idle -> 2, idle after cooldown -> 0
    idle = keda_loop.ScaleLoop(
        keda.parse(so(idleReplicaCount=0, minReplicaCount=2, cooldownPeriod=10)), created_at=0
    )
    assert idle.request_scale(1.0, 0, _reading(True)).replicas == 2
    assert idle.request_scale(5.0, 2, _reading(False)).replicas is None
    assert idle.request_scale(12.0, 2, _reading(False)).replicas == 0
    # minReplicaCount 2, no idle: never below 2, lifted back to it while inactive
    floor = keda_loop.ScaleLoop(keda.parse(so(minReplicaCount=2)), created_at=0)
    assert floor.request_scale(1000.0, 2, _reading(False)).replicas is None
    assert floor.request_scale(1030.0, 1, _reading(False)).replicas == 2


def test_query_subset() -> None:
    q = promql_selector.parse_query(
        'sum(vllm:num_requests_running{pod=~"web-.*",namespace!="x"})', "q"
    )
    series = [
        ({"pod": "web-1", "namespace": "a"}, 2.0),
        ({"pod": "web-2", "namespace": "a"}, 3.0),
        ({"pod": "db-1", "namespace": "a"}, 7.0),
        ({"pod": "web-3", "namespace": "x"}, 11.0),
    ]
    assert q.evaluate(series) == 5.0
    assert promql_selector.parse_query("avg(m)", "q").evaluate([({}, 1.0), ({}, 3.0)]) == 2.0
    assert promql_selector.parse_query("max(m)", "q").evaluate([]) is None
    with pytest.raises(ValueError, match="multiple elements"):
        promql_selector.parse_query("m", "q").evaluate([({}, 1.0), ({}, 3.0)])
    with pytest.raises(ModelInputError) as err:
        promql_selector.parse_query("sum(rate(m[1m]))", "spec.triggers[0].metadata.query")
    assert err.value.field == "spec.triggers[0].metadata.query"


def test_source_metric() -> None:
    obj = so()
    obj["spec"]["triggers"][0]["metadata"]["query"] = "sum(vllm:num_requests_waiting)"
    assert keda.source_metric(keda.parse(obj), "s0-prometheus") == "vllm:num_requests_waiting"
    assert keda.source_metric(keda.parse(so()), "s0-prometheus") is None  # rate(): beyond


def test_scale_loop_errors_keep_replicas() -> None:
    """A failing trigger is neither active nor a reason to deactivate: without fallback the
    Ready condition goes False (TriggerError) and nothing scales; with fallback replicas the
    metrics server serves those (the executor leaves the target alone)."""
    failing = [keda_loop.TriggerReading("s0-prometheus", None, False, "query failed")]
    plain = keda_loop.ScaleLoop(keda.parse(so()), created_at=0)
    assert plain.request_scale(100.0, 3, failing).replicas is None
    fb = keda_loop.ScaleLoop(
        keda.parse(so(fallback={"failureThreshold": 3, "replicas": 2})), created_at=0
    )
    assert fb.request_scale(100.0, 3, failing).replicas is None
