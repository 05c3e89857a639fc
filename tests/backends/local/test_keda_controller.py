"""The local backend runs a ScaledObject with KEDA's semantics: the generated HPA scales on the
External metric (the trigger's query over the replicas' scraped /metrics), and KEDA's operator
activates from / deactivates to zero on its own poll, after cooldownPeriod (fake clock)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cluster_fakes import add_pod, cluster

from harness import prom
from harness.backends.local.controllers import hpa_controller, keda_controller
from harness.backends.local.controllers.hpa_controller import HorizontalPodAutoscalerController
from harness.models import keda


def scaled_object(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "standin"},
        "spec": {
            "scaleTargetRef": {"name": "standin"},
            "maxReplicaCount": 5,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": "http://prometheus:9090",
                        "query": 'sum(vllm:num_requests_running{pod=~"standin-.*"})',
                        "threshold": "2",
                    },
                }
            ],
            **spec,
        },
    }


def metrics(running: float) -> prom.Samples:
    return {"vllm:num_requests_running": [({}, running)]}


def controller(
    s: Any, scaled: list[int], monkeypatch: pytest.MonkeyPatch, running: dict[str, float]
) -> HorizontalPodAutoscalerController:
    """The HPA controller for the bundle's generated HPA, each pod IP serving `running`."""
    by_ip = {p.pod_ip: running[name] for name, p in s.pods.items()}
    monkeypatch.setattr(
        hpa_controller.prom,
        "scrape",
        lambda url, timeout_s=3: metrics(by_ip[url.split("/")[2].split(":")[0]]),
    )
    hpa = s.bundle.hpa
    assert hpa is not None and hpa["metadata"]["name"] == "keda-hpa-standin"

    def scale(n: int) -> None:
        scaled.append(n)
        s.deployment.spec_replicas = n

    return HorizontalPodAutoscalerController(
        s,
        hpa,
        period_s=15.0,
        metric_resolution_s=15.0,
        options={},
        scale=scale,
        ready_replicas=lambda: len(s.pods),
        metrics_port=lambda: 8000,
    )


def test_the_generated_hpa_scales_on_the_query_over_the_replicas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3 + 4 requests in flight over 2 replicas: s0-prometheus = 7, ceil(7 / 2) = 4. Before:
    the local backend ignored a ScaledObject (bundle.hpa None: nothing scaled)."""
    s = cluster(2, scaled_object(minReplicaCount=2))
    add_pod(s, "standin-h1-a", ready=True)
    add_pod(s, "standin-h1-b", ready=True)
    scaled: list[int] = []
    ctl = controller(s, scaled, monkeypatch, {"standin-h1-a": 3, "standin-h1-b": 4})
    assert ctl.keda is not None and ctl.keda_operator is not None
    ctl.sync(time.time())
    assert scaled == [4]
    (sample,) = s.hpa_history
    ext = next(m for m in sample.currentMetrics if m["type"] == "External")
    assert ext["external"]["metric"]["name"] == "s0-prometheus"
    assert ext["external"]["current"] == {"averageValue": "3500m"}  # 7 over 2 replicas


def test_at_zero_the_hpa_leaves_scaling_to_keda(monkeypatch: pytest.MonkeyPatch) -> None:
    s = cluster(0, scaled_object())
    scaled: list[int] = []
    ctl = controller(s, scaled, monkeypatch, {})
    ctl.sync(time.time())
    assert scaled == []
    (cond,) = [c for c in s.hpa_history[0].conditions if c["type"] == "ScalingActive"]
    assert cond["reason"] == "ScalingDisabled"


def test_operator_cooldown_to_zero_and_activation_with_a_fake_clock() -> None:
    """pollingInterval 5, cooldownPeriod 60, minReplicaCount 0. Active while requests are in
    flight; idle from t=10: kept at 2 until lastActiveTime 5 + 60 has passed, then 0. At zero
    no replica serves the series (the query is empty: 0 with ignoreNullValues), so only a series
    from elsewhere (here one more scraped target) activates it: 0 -> 1."""
    s = cluster(2)
    so = keda.parse(scaled_object(cooldownPeriod=60, pollingInterval=5))
    feed: dict[str, keda_controller.Scraped] = {"now": []}
    replicas = {"n": 2}

    def scale(n: int) -> None:
        replicas["n"] = n

    op = keda_controller.KedaOperator(
        s,
        so,
        keda_controller.KedaScalers(so),
        scrape=lambda: feed["now"],
        spec_replicas=lambda: replicas["n"],
        scale=scale,
        clock=lambda: 0.0,
    )
    busy = [(keda_controller.pod_labels("default", "standin-h1-a"), metrics(1))]
    idle = [(keda_controller.pod_labels("default", "standin-h1-a"), metrics(0))]
    feed["now"] = busy
    assert op.sync(5.0).active_reason == "ScalerActive" and op.loop.last_active == 5.0
    feed["now"] = idle
    for t in range(10, 66, 5):  # 10 .. 65: 5 + 60 is not before 65
        res = op.sync(float(t))
        assert res.active_reason == "ScalerCooldown" and replicas["n"] == 2, t
    res = op.sync(70.0)
    assert replicas["n"] == 0 and res.event == "KEDAScaleTargetDeactivated"
    feed["now"] = []  # no replica, no series
    assert op.sync(75.0).replicas is None and replicas["n"] == 0
    feed["now"] = [(keda_controller.pod_labels("default", "standin-gateway"), metrics(3))]
    op.sync(80.0)
    assert replicas["n"] == 1
    reasons = [e.reason for e in s.events.list() if e.source == keda_controller.SOURCE]
    assert reasons == ["KEDAScaleTargetDeactivated", "KEDAScaleTargetActivated"]


def test_cached_metrics_serve_the_last_poll() -> None:
    obj = scaled_object()
    obj["spec"]["triggers"][0]["useCachedMetrics"] = True
    scalers = keda_controller.KedaScalers(keda.parse(obj))
    labels = keda_controller.pod_labels("default", "standin-h1-a")
    assert scalers.external([(labels, metrics(9))]) == {}  # never polled: nothing cached
    scalers.poll([(labels, metrics(4))])
    assert scalers.external([(labels, metrics(9))]) == {"s0-prometheus": [4.0]}
    fresh = keda_controller.KedaScalers(keda.parse(scaled_object()))
    assert fresh.external([(labels, metrics(9))]) == {"s0-prometheus": [9.0]}


def test_a_plain_hpa_still_reads_its_pods_metric_per_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrape shared with KEDA still feeds a Pods metric per pod (no KEDA loop for it)."""
    s = cluster(2)
    add_pod(s, "standin-h1-a", ready=True)
    add_pod(s, "standin-h1-b", ready=True)
    by_ip = {p.pod_ip: v for p, v in zip(s.pods.values(), (3.0, 4.0), strict=True)}
    monkeypatch.setattr(
        hpa_controller.prom,
        "scrape",
        lambda url, timeout_s=3: metrics(by_ip[url.split("/")[2].split(":")[0]]),
    )
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "standin"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "standin"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "vllm:num_requests_running"},
                        "target": {"type": "AverageValue", "averageValue": "2"},
                    },
                }
            ],
        },
    }
    scaled: list[int] = []
    ctl = HorizontalPodAutoscalerController(
        s,
        hpa,
        period_s=15.0,
        metric_resolution_s=15.0,
        options={},
        scale=scaled.append,
        ready_replicas=lambda: 2,
        metrics_port=lambda: 8000,
    )
    assert ctl.keda is None and ctl.keda_operator is None
    ctl.sync(time.time())
    assert scaled == [4]  # (3 + 4) / 2 = 3.5 per pod vs 2 -> ceil(2 x 1.75) = 4
    (pods,) = [m for m in s.hpa_history[0].currentMetrics if m["type"] == "Pods"]
    assert pods["pods"]["current"] == {"averageValue": "3500m"}
