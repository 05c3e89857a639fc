"""The HorizontalPodAutoscaler loop: every sync period, what a cluster would serve goes to the
shared HPA model (`harness.models.hpa.HPAController.reconcile`), and a rescale is applied.

Inputs (hpa_inputs.py): v1 Pods, metrics.k8s.io PodMetrics from the resource samples, and
Pods metrics scraped from each running pod's /metrics. Every sync is an HPAStatusSample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness import prom
from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers import hpa_inputs
from harness.backends.observe import HPAStatusSample
from harness.models.hpa import HPAController

SOURCE = "horizontal-pod-autoscaler"


class HorizontalPodAutoscalerController:
    def __init__(
        self,
        state: ClusterState,
        hpa: dict[str, Any],
        *,
        period_s: float,
        metric_resolution_s: float,
        options: dict[str, Any],
        scale: Callable[[int], None],
        ready_replicas: Callable[[], int],
        metrics_port: Callable[[], int],
    ) -> None:
        self.state = state
        self.hpa = hpa
        self.name = (hpa.get("metadata") or {}).get("name", "hpa")
        self.period_s = period_s
        self.metric_resolution_s = metric_resolution_s  # metrics-server's --metric-resolution
        self.model = HPAController(hpa, **options)
        self.scale = scale
        self.ready_replicas = ready_replicas
        self.metrics_port = metrics_port
        self.last_scale_time: float | None = None

    def run(self) -> None:
        while not self.state.stop.wait(self.period_s):
            try:
                self.sync(time.time())
            except Exception as err:  # keep the loop alive; surface the problem as an event
                self.state.events.record(
                    "HorizontalPodAutoscaler",
                    self.name,
                    "FailedComputeMetricsReplicas",
                    repr(err),
                    type_="Warning",
                    source=SOURCE,
                )

    def sync(self, now: float) -> None:
        s = self.state
        with s.lock:
            local = list(s.pods.values())
            pods = [p.to_observed() for p in local]
            since = now - 3 * self.metric_resolution_s
            samples = [x for x in s.samples if x.time >= since]
        v1 = [hpa_inputs.v1_pod(obs, lp.template) for obs, lp in zip(pods, local, strict=True)]
        pod_metrics = hpa_inputs.pod_metrics_from_samples(
            samples, {p.name: p.containerStatuses[0].name for p in pods}, self.metric_resolution_s
        )
        wanted = [
            m["pods"]["metric"]["name"] for m in self.model.metrics if m.get("type") == "Pods"
        ]
        custom: dict[str, dict[str, dict[str, float]]] = {"pods": {}}
        if wanted:
            for p in pods:
                if p.phase != "Running" or p.podIP is None or p.deletionTimestamp is not None:
                    continue
                values = prom.scrape(f"http://{p.podIP}:{self.metrics_port()}/metrics", timeout_s=2)
                for mname in wanted:
                    v = prom.total(values, mname)
                    if v is not None:
                        custom["pods"].setdefault(mname, {})[p.name] = v
        with s.lock:
            spec = s.deployment.spec_replicas
        decision = self.model.reconcile(
            now, spec_replicas=spec, pods=v1, pod_metrics=pod_metrics, custom_metrics=custom
        )
        if decision.rescale and decision.desiredReplicas != spec:
            self.scale(decision.desiredReplicas)
            self.last_scale_time = now
            s.events.record(
                "HorizontalPodAutoscaler",
                self.name,
                "SuccessfulRescale",
                f"New size: {decision.desiredReplicas}; reason: {decision.reason}",
                source=SOURCE,
            )
        with s.lock:
            s.hpa_history.append(
                HPAStatusSample(
                    time=now,
                    currentReplicas=spec,
                    desiredReplicas=decision.desiredReplicas,
                    readyReplicas=self.ready_replicas(),
                    currentMetrics=decision.currentMetrics,
                    conditions=decision.conditions,
                    lastScaleTime=self.last_scale_time,
                    reason=decision.reason,
                    error=decision.error,
                )
            )
