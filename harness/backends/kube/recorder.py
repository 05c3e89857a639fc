"""Background polling of one namespace: Kubernetes keeps only the latest state, Gauntlet needs
the history (every pod condition transition, every event, HPA status over time, metrics)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from harness import prom
from harness.backends.kube import convert
from harness.backends.kube.api import KubeApi, KubeApiError, resource_path
from harness.backends.observe import Condition, Event, HPAStatusSample, ResourceSample
from harness.quantity import cpu_cores, memory_bytes

log = logging.getLogger("harness.backends.kube")
K8sObject = dict[str, Any]


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
        self._last_metrics = 0.0

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

    def _poll_metrics(self) -> None:
        now = time.time()
        if self.metrics_available is False or now - self._last_metrics < self.metrics_poll_s:
            return
        self._last_metrics = now
        try:
            items = self.api.list(
                resource_path("metrics.k8s.io/v1beta1", "PodMetrics", self.namespace)
            )
        except KubeApiError as exc:
            if exc.status in (404, 503):
                if self.metrics_available is None:
                    log.info(
                        "metrics API (metrics.k8s.io) not available: no CPU/memory samples (%s)",
                        exc.status,
                    )
                self.metrics_available = False
                return
            raise
        self.metrics_available = True
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
