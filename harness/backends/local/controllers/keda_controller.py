"""KEDA for the local backend: the operator's scale loop and its metrics server, for a
ScaledObject whose generated HPA (harness.models.keda.to_hpa) the HPA controller runs.

* Scalers: each prometheus trigger's query is evaluated (harness.models.promql_selector) over
  what the running replicas' /metrics serve, each series labelled with its `namespace` and
  `pod` as a Prometheus with pod service discovery would label it.
* Operator (ScaleLoop): every pollingInterval, activation from zero/idle and deactivation after
  cooldownPeriod (KEDA's RequestScale); recorded as KEDAScaleTargetActivated/Deactivated events.
* Metrics server: what the HPA reads for `s<i>-prometheus` at its own sync: a fresh query, or
  with useCachedMetrics the value of the last poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from harness import prom
from harness.backends.local.cluster.state import ClusterState
from harness.models import keda, keda_loop, promql_selector

SOURCE = "keda-operator"

#: (pod labels for the query: namespace, pod, ...; the pod's scraped /metrics)
Scraped = list[tuple[dict[str, str], prom.Samples]]


def series(scraped: Scraped, metric: str) -> list[tuple[dict[str, str], float]]:
    """The metric's series over all scraped replicas, each with its pod's labels added."""
    out = []
    for pod_labels, samples in scraped:
        for labels, value in samples.get(metric, []):
            out.append(({**labels, **pod_labels}, value))
    return out


class KedaScalers:
    """The ScaledObject's prometheus triggers, read over scraped replicas."""

    def __init__(self, so: keda.ScaledObject) -> None:
        self.so = so
        self.queries = {
            i: promql_selector.parse_query(
                t.metadata["query"], f"spec.triggers[{i}].metadata.query"
            )
            for i, t in enumerate(so.spec.triggers)
            if t.type == "prometheus"
        }
        self.cached: dict[str, float] = {}  # the last poll's values (useCachedMetrics)
        self.lock = threading.Lock()

    def read(self, scraped: Scraped) -> list[keda_loop.TriggerReading]:
        """GetMetricsAndActivity for every prometheus trigger."""
        out = []
        for i, q in self.queries.items():
            t = self.so.spec.triggers[i]
            try:
                value = q.evaluate(series(scraped, q.metric))
            except ValueError as err:
                out.append(keda_loop.TriggerReading(keda.metric_name(i, t), None, False, str(err)))
                continue
            out.append(keda_loop.read_prometheus(i, t, value))
        return out

    def poll(self, scraped: Scraped) -> list[keda_loop.TriggerReading]:
        readings = self.read(scraped)
        with self.lock:
            for r in readings:
                if r.value is not None:
                    self.cached[r.metric] = r.value
        return readings

    def external(self, scraped: Scraped | None) -> dict[str, list[float]]:
        """external.metrics.k8s.io for the HPA: a fresh query per trigger (None: not scraped),
        or the cached poll with useCachedMetrics. A failing query serves nothing (the HPA then
        reports FailedGetExternalMetric)."""
        out: dict[str, list[float]] = {}
        for i in self.queries:
            t = self.so.spec.triggers[i]
            name = keda.metric_name(i, t)
            if t.useCachedMetrics:
                with self.lock:
                    if name in self.cached:
                        out[name] = [self.cached[name]]
                continue
            if scraped is None:
                continue
            for r in self.read(scraped):
                if r.metric == name and r.value is not None:
                    out[name] = [r.value]
        return out


class KedaOperator:
    """The operator's scale loop for one ScaledObject, every pollingInterval."""

    def __init__(
        self,
        state: ClusterState,
        so: keda.ScaledObject,
        scalers: KedaScalers,
        *,
        scrape: Callable[[], Scraped],
        spec_replicas: Callable[[], int],
        scale: Callable[[int], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.so = so
        self.scalers = scalers
        self.scrape = scrape
        self.spec_replicas = spec_replicas
        self.scale = scale
        self.clock = clock
        self.loop = keda_loop.ScaleLoop(so, created_at=clock())

    def run(self) -> None:
        period = self.so.spec.polling_interval_s
        while not self.state.stop.wait(period):
            try:
                self.sync(self.clock())
            except Exception as err:  # keep polling; surface it
                self.state.events.record(
                    "ScaledObject",
                    self.so.name,
                    "KEDAScalerFailed",
                    repr(err),
                    type_="Warning",
                    source=SOURCE,
                )

    def sync(self, now: float) -> keda_loop.ScaleResult:
        readings = self.scalers.poll(self.scrape())
        for r in readings:
            if r.error:
                self.state.events.record(
                    "ScaledObject",
                    self.so.name,
                    "KEDAScalerFailed",
                    f"{r.metric}: {r.error}",
                    type_="Warning",
                    source=SOURCE,
                )
        current = self.spec_replicas()
        res = self.loop.request_scale(now, current, readings)
        if res.replicas is not None and res.replicas != current:
            self.scale(res.replicas)
            if res.event:
                self.state.events.record(
                    "ScaledObject", self.so.name, res.event, res.message, source=SOURCE
                )
        return res


def pod_labels(namespace: str | None, name: str) -> dict[str, str]:
    """The target labels manifests/kind/metrics-pipeline's Prometheus gives each scraped
    series: the pod's namespace and name."""
    return {"namespace": namespace or "default", "pod": name}
