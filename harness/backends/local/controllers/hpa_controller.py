"""The HorizontalPodAutoscaler loop: every sync period, what a cluster would serve goes to the
shared HPA model (`harness.models.hpa.HPAController.reconcile`), and a rescale is applied.

Inputs (hpa_inputs.py): v1 Pods, metrics.k8s.io PodMetrics from the resource samples, and
Pods metrics scraped from each running pod's /metrics. Every sync is an HPAStatusSample.

An HPA KEDA generates for a ScaledObject in the bundle (ManifestBundle.hpa) also runs KEDA
(keda_controller.py): its operator's activation/cooldown loop beside this one, and the External
metrics its metrics server would serve, from the same scrapes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from harness import prom
from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers import hpa_inputs, keda_controller
from harness.backends.observe import HPAStatusSample, Pod
from harness.models import keda
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
        self.keda: keda_controller.KedaScalers | None = None
        self.keda_operator: keda_controller.KedaOperator | None = None
        so = state.bundle.scaled_object(self.name) if state.bundle is not None else None
        if so is not None:
            parsed = keda.parse(so)
            self.keda = keda_controller.KedaScalers(parsed)
            self.keda_operator = keda_controller.KedaOperator(
                state,
                parsed,
                self.keda,
                scrape=lambda: self.scrape()[1],
                spec_replicas=self._spec_replicas,
                scale=scale,
            )

    def _spec_replicas(self) -> int:
        with self.state.lock:
            return self.state.deployment.spec_replicas

    def run(self) -> None:
        if self.keda_operator is not None:
            threading.Thread(
                target=self.keda_operator.run, name="gauntlet-keda-operator", daemon=True
            ).start()
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

    def scrape(
        self, pods: list[Pod] | None = None
    ) -> tuple[list[tuple[str, prom.Samples]], keda_controller.Scraped]:
        """Each running pod's /metrics: by pod name, and labelled as Prometheus stores them."""
        if pods is None:
            with self.state.lock:
                pods = [p.to_observed() for p in self.state.pods.values()]
        by_name: list[tuple[str, prom.Samples]] = []
        labelled: keda_controller.Scraped = []
        for p in pods:
            if p.phase != "Running" or p.podIP is None or p.deletionTimestamp is not None:
                continue
            values = prom.scrape(f"http://{p.podIP}:{self.metrics_port()}/metrics", timeout_s=2)
            by_name.append((p.name, values))
            labelled.append((keda_controller.pod_labels(p.namespace, p.name), values))
        return by_name, labelled

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
        custom: dict[str, Any] = {"pods": {}}
        if wanted or self.keda is not None:
            scraped, labelled = self.scrape(pods)
            for name, values in scraped:
                for mname in wanted:
                    v = prom.total(values, mname)
                    if v is not None:
                        custom["pods"].setdefault(mname, {})[name] = v
            if self.keda is not None:
                custom["external"] = self.keda.external(labelled)
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
