"""Background polling of one namespace: Kubernetes keeps only the latest state, Gauntlet needs
the history (every pod condition transition, every event, HPA status over time, metrics)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import BaseModel

from harness import prom
from harness.backends.kube import convert
from harness.backends.kube.api import KubeApi, KubeApiError, resource_path
from harness.backends.observe import Condition, Event, HPAStatusSample, ResourceSample
from harness.quantity import cpu_cores, memory_bytes

log = logging.getLogger("harness.backends.kube")
K8sObject = dict[str, Any]


#: the metrics API is retried with a doubling interval up to this many times metrics_poll_s
METRICS_BACKOFF_CAP = 6


class MetricsGap(BaseModel):
    """A span when the metrics API (metrics.k8s.io) did not answer: no CPU/memory samples."""

    first_failure: float  # epoch seconds
    last_failure: float
    failures: int = 0
    statuses: list[int] = []  # the HTTP statuses met, in order first seen
    message: str = ""  # the last error
    recovered_at: float | None = None  # None: still unavailable when last asked


class Recorder:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        *,
        deployment: str | None,
        hpa: str | None,
        poll_s: float = 1.0,
        metrics_poll_s: float = 5.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.deployment = deployment
        self.hpa = hpa
        self.poll_s = poll_s
        self.metrics_poll_s = metrics_poll_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pods_raw: dict[str, K8sObject] = {}  # every pod ever seen, last state
        self.condition_history: dict[str, list[Condition]] = {}
        self.events: dict[str, Event] = {}
        self.hpa_samples: list[HPAStatusSample] = []
        self.resource_samples: list[ResourceSample] = []
        self.metrics_available: bool | None = None  # None: not probed yet
        self.cadvisor_available: bool | None = (
            None  # nodes/proxy metrics/cadvisor (RBAC may refuse it)
        )
        self.errors = 0
        self.metrics_gaps: list[MetricsGap] = []  # the last one open while metrics fail
        self._metrics_next = 0.0  # monotonic time of the next metrics poll
        self._metrics_interval = metrics_poll_s

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"kube-recorder-{self.namespace}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.poll_s)

    # polling ---------------------------------------------------------------------------------
    def poll_once(self) -> None:
        for step in (self._poll_pods, self._poll_events, self._poll_hpa, self._poll_metrics):
            if self._stop.is_set():
                return
            try:
                step()
            except KubeApiError as exc:
                self.errors += 1
                log.debug("recorder: %s", exc)
            except Exception as exc:  # a transient network error must not kill the history
                self.errors += 1
                log.debug("recorder: %r", exc)

    def record_pods(self, items: list[K8sObject]) -> None:
        """Merge a pod list into the history (also called by the backend's own reads)."""
        with self._lock:
            for obj in items:
                name = (obj.get("metadata") or {}).get("name")
                if not name:
                    continue
                self.pods_raw[name] = obj
                created = (
                    convert.epoch((obj.get("metadata") or {}).get("creationTimestamp"))
                    or time.time()
                )
                hist = self.condition_history.setdefault(name, [])
                for c in (obj.get("status") or {}).get("conditions") or []:
                    cond = convert.condition(c, created)
                    last = next((h for h in reversed(hist) if h.type == cond.type), None)
                    if (
                        last is None
                        or last.status != cond.status
                        or last.lastTransitionTime != cond.lastTransitionTime
                    ):
                        hist.append(cond)

    def seen_pods(self) -> dict[str, K8sObject]:
        """Every pod seen since the recorder started, by name, in the last state seen."""
        with self._lock:
            return dict(self.pods_raw)

    def gaps(self) -> list[MetricsGap]:
        """The metrics API's gaps so far (copies)."""
        with self._lock:
            return [g.model_copy(deep=True) for g in self.metrics_gaps]

    def history_of(self, pod: str) -> list[Condition]:
        """Every condition transition seen for `pod` (Kubernetes keeps only the latest)."""
        with self._lock:
            return list(self.condition_history.get(pod, []))

    def _poll_pods(self) -> None:
        self.record_pods(self.api.list(resource_path("v1", "Pod", self.namespace)))

    def _poll_events(self) -> None:
        items = self.api.list(resource_path("v1", "Event", self.namespace))
        with self._lock:
            for obj in items:
                self.events[convert.event_key(obj)] = convert.event(obj)

    def _poll_hpa(self) -> None:
        if not self.hpa:
            return
        hpa = self.api.get(
            resource_path("autoscaling/v2", "HorizontalPodAutoscaler", self.namespace, self.hpa)
        )
        ready = None
        if self.deployment:
            dep = self.api.get(
                resource_path("apps/v1", "Deployment", self.namespace, self.deployment)
            )
            ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        sample = convert.hpa_sample(hpa, time.time(), ready)
        with self._lock:
            self.hpa_samples.append(sample)

    def _metrics_failed(self, exc: KubeApiError) -> None:
        """Open or extend the current gap; ask again after a doubling, capped interval."""
        now = time.time()
        with self._lock:
            gap = self.metrics_gaps[-1] if self.metrics_gaps else None
            if gap is None or gap.recovered_at is not None:
                gap = MetricsGap(first_failure=now, last_failure=now)
                self.metrics_gaps.append(gap)
                log.info(
                    "metrics API (metrics.k8s.io) not available (%s %s): no CPU/memory samples "
                    "until it answers; retrying with back-off",
                    exc.status,
                    exc.reason,
                )
            gap.last_failure = now
            gap.failures += 1
            gap.message = exc.message or exc.reason
            if exc.status not in gap.statuses:
                gap.statuses.append(exc.status)
        self.metrics_available = False
        self._metrics_next = time.monotonic() + self._metrics_interval
        self._metrics_interval = min(
            self._metrics_interval * 2, self.metrics_poll_s * METRICS_BACKOFF_CAP
        )

    def _metrics_answered(self) -> None:
        with self._lock:
            gap = self.metrics_gaps[-1] if self.metrics_gaps else None
            if gap is not None and gap.recovered_at is None:
                gap.recovered_at = time.time()
                log.info(
                    "metrics API answers again after %.1fs (%d failed polls)",
                    gap.recovered_at - gap.first_failure,
                    gap.failures,
                )
        self.metrics_available = True
        self._metrics_interval = self.metrics_poll_s
        self._metrics_next = time.monotonic() + self.metrics_poll_s

    def _poll_metrics(self) -> None:
        if time.monotonic() < self._metrics_next:
            return
        try:
            items = self.api.list(
                resource_path("metrics.k8s.io/v1beta1", "PodMetrics", self.namespace)
            )
        except KubeApiError as exc:
            # a fresh metrics-server's APIService answers 503 (not Available) or 404 (not
            # registered yet) for its first 30-60 s; any refusal is a gap in the samples
            self._metrics_failed(exc)
            return
        self._metrics_answered()
        with self._lock:
            pods = dict(self.pods_raw)
        samples = [
            s
            for s in (
                _sample(m, pods.get((m.get("metadata") or {}).get("name", ""))) for m in items
            )
            if s is not None
        ]
        live = {(m.get("metadata") or {}).get("name") for m in items}
        cfs = self._cfs_counters(
            {
                str((p.get("spec") or {}).get("nodeName"))
                for name, p in pods.items()
                if name in live and (p.get("spec") or {}).get("nodeName")
            }
        )
        for sample in samples:
            if sample.pod in cfs:
                sample.cpu_periods, sample.cpu_throttled_periods, sample.cpu_throttled_s = cfs[
                    sample.pod
                ]
        with self._lock:
            self.resource_samples.extend(samples)

    def _cfs_counters(self, nodes: set[str]) -> dict[str, tuple[int, int, float]]:
        """Per pod of this namespace: CFS (periods, throttled periods, throttled seconds) from
        each node's cAdvisor through the API server proxy; {} where that is refused."""
        out: dict[str, tuple[int, int, float]] = {}
        if self.cadvisor_available is False:
            return out
        for node in sorted(nodes):
            try:
                text = self.api.get_text(f"/api/v1/nodes/{node}/proxy/metrics/cadvisor")
            except KubeApiError as exc:
                if exc.status in (401, 403, 404, 503):
                    log.info(
                        "cAdvisor metrics through nodes/proxy not available (%s): "
                        "no CPU throttling counters",
                        exc.status,
                    )
                    self.cadvisor_available = False
                    return {}
                raise
            self.cadvisor_available = True
            # a node's cAdvisor text runs to megabytes: parse only the three CFS series
            rows = "\n".join(line for line in text.splitlines() if line.startswith(CFS_METRICS))
            out.update(cfs_by_pod(prom.parse(rows), self.namespace))
        return out


CFS_METRICS = (
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
)


def cfs_by_pod(samples: prom.Samples, namespace: str) -> dict[str, tuple[int, int, float]]:
    """cAdvisor's CFS counters summed over each pod's containers (not the pod-level or pause
    cgroup rows, which have no container label or `POD`)."""
    sums: dict[str, list[float]] = {}
    for i, name in enumerate(CFS_METRICS):
        for labels, value in samples.get(name, []):
            if labels.get("namespace") != namespace or labels.get("container") in (None, "", "POD"):
                continue
            sums.setdefault(labels.get("pod", ""), [0.0, 0.0, 0.0])[i] += value
    return {pod: (int(v[0]), int(v[1]), v[2]) for pod, v in sums.items() if pod}


def _sum_quantity(containers: list[K8sObject], section: str, key: str, conv: Any) -> Any:
    total, seen = 0, False
    for c in containers:
        value = ((c.get("resources") or {}).get(section) or {}).get(key)
        if value is not None:
            total += conv(value)
            seen = True
    return total if seen else None


def _sample(metric: K8sObject, pod: K8sObject | None) -> ResourceSample | None:
    name = (metric.get("metadata") or {}).get("name")
    if not name:
        return None
    usage = [c.get("usage") or {} for c in metric.get("containers") or []]
    cpu = sum(cpu_cores(u["cpu"]) for u in usage if "cpu" in u) if usage else None
    mem = sum(memory_bytes(u["memory"]) for u in usage if "memory" in u) if usage else None
    containers = ((pod or {}).get("spec") or {}).get("containers") or []
    t = convert.epoch(metric.get("timestamp")) or time.time()
    return ResourceSample(
        time=t,
        pod=name,
        cpu_cores=cpu,
        memory_bytes=int(mem) if mem is not None else None,
        cpu_request_cores=_sum_quantity(containers, "requests", "cpu", cpu_cores),
        cpu_limit_cores=_sum_quantity(containers, "limits", "cpu", cpu_cores),
        memory_limit_bytes=_sum_quantity(containers, "limits", "memory", memory_bytes),
        oom_kills=_oom_kills(pod),
    )


def _oom_kills(pod: K8sObject | None) -> int | None:
    if pod is None:
        return None
    n = 0
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in (cs.get("state") or {}, cs.get("lastState") or {}):
            if ((state.get("terminated") or {}).get("reason")) == "OOMKilled":
                n += 1
    return n
