"""HPA replica calculator: a port of pkg/controller/podautoscaler/replica_calculator.go
(and the ratio helpers of metrics/utilization.go).

Integers are int64 milli-units (Quantity.MilliValue()); divisions that truncate upstream truncate
here (`//` on non-negative ints). Error messages are upstream's, so they can be compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.models._k8s import dig, to_epoch, to_milli
from harness.models.hpa.metrics_client import PodMetric

MAX_INT32 = 2**31 - 1


class MetricError(Exception):
    """A metric could not be computed (upstream returns an error; no scaling from this metric)."""


@dataclass(frozen=True)
class Tolerances:
    """Closed interval [1 - scale_down, 1 + scale_up] in which no scaling happens."""

    scale_down: float = 0.1
    scale_up: float = 0.1

    def is_within(self, usage_ratio: float) -> bool:
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


def _pod_name(pod: dict) -> str:
    return str(dig(pod, "metadata", "name", default=""))


def _ready_condition(pod: dict) -> dict | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def is_pod_ready(pod: dict) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def group_pods(
    pods: list[dict],
    metrics: dict[str, PodMetric],
    resource: str,
    now: float,
    cpu_initialization_period: float,
    delay_of_initial_readiness_status: float,
) -> tuple[int, set[str], set[str], set[str]]:
    """groupPods: (readyPodCount, unready, missing, ignored). CPU-only readiness rules."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        name = str(meta.get("name", ""))
        phase = status.get("phase", "")
        if meta.get("deletionTimestamp") is not None or phase == "Failed":
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = _ready_condition(pod)
            start = status.get("startTime")
            if cond is None or start is None:
                is_unready = True
            else:
                start_t = to_epoch(start, "status.startTime")
                ltt = cond.get("lastTransitionTime")
                ltt_t = to_epoch(ltt, "lastTransitionTime") if ltt is not None else _ZERO_TIME
                if start_t + cpu_initialization_period > now:
                    is_unready = (
                        cond.get("status") == "False" or metric.timestamp < ltt_t + metric.window
                    )
                else:
                    is_unready = (
                        cond.get("status") == "False"
                        and start_t + delay_of_initial_readiness_status > ltt_t
                    )
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


# Go's zero time.Time (0001-01-01T00:00:00Z) as epoch seconds: an unset lastTransitionTime.
_ZERO_TIME = -62135596800.0


def calculate_requests(pods: list[dict], container: str, resource: str) -> dict[str, int]:
    """Per-pod request (milli): one container, or containers + restartable init containers."""
    requests: dict[str, int] = {}
    for pod in pods:
        name = _pod_name(pod)
        spec = pod.get("spec") or {}
        containers = list(spec.get("containers") or [])
        containers += [
            c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
        ]
        total = 0
        found = False
        for c in containers:
            cname = c.get("name", "")
            if container == "" or container == cname:
                req = ((c.get("resources") or {}).get("requests") or {}).get(resource)
                if req is None:
                    raise MetricError(
                        f"missing request for {resource} in container {cname} of Pod {name}"
                    )
                total += to_milli(
                    req, f"pods[{name}].spec.containers[{cname}].resources.requests.{resource}"
                )
            if container and container == cname:
                found = True
                break
        if container and not found:
            raise MetricError(f"container {container} not found in Pod {name}")
        requests[name] = total
    return requests


def resource_utilization_ratio(
    metrics: dict[str, PodMetric], requests: dict[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """GetResourceUtilizationRatio -> (usageRatio, currentUtilization, rawAverageValue)."""
    metrics_total = 0
    requests_total = 0
    entries = 0
    for name, m in metrics.items():
        if name in requests:
            metrics_total += m.value
            requests_total += requests[name]
            entries += 1
    if requests_total == 0:
        raise MetricError("no metrics returned matched known pods")
    current = _trunc_div(metrics_total * 100, requests_total)
    return current / target_utilization, current, _trunc_div(metrics_total, entries)


def metric_usage_ratio(metrics: dict[str, PodMetric], target_usage: int) -> tuple[float, int]:
    """GetMetricUsageRatio -> (usageRatio, currentUsage = Σ/len, int64 division)."""
    total = sum(m.value for m in metrics.values())
    current = _trunc_div(total, len(metrics))
    return current / target_usage, current


def _trunc_div(a: int, b: int) -> int:
    """Go integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _ceil_i32(x: float) -> int:
    return MAX_INT32 if x > MAX_INT32 else math.ceil(x)


class ReplicaCalculator:
    """Pure version of upstream's ReplicaCalculator: pods and metrics are passed in."""

    def __init__(
        self,
        *,
        cpu_initialization_period_s: float = 300.0,
        initial_readiness_delay_s: float = 30.0,
    ) -> None:
        self.cpu_initialization_period = cpu_initialization_period_s
        self.initial_readiness_delay = initial_readiness_delay_s

    # --- Resource / ContainerResource, target Utilization ---------------------------------
    def get_resource_replicas(
        self,
        current_replicas: int,
        target_utilization: int,
        resource: str,
        tolerances: Tolerances,
        pods: list[dict],
        metrics: dict[str, PodMetric],
        now: float,
        container: str = "",
    ) -> tuple[int, int, int]:
        """-> (replicas, utilization %, rawAverageValue milli). Raises MetricError."""
        if not metrics:
            raise MetricError(
                f"unable to get metrics for resource {resource}: "
                "no metrics returned from resource metrics API"
            )
        metrics = dict(metrics)
        if not pods:
            raise MetricError("no pods returned by selector while calculating replica count")
        ready, unready, missing, ignored = group_pods(
            pods,
            metrics,
            resource,
            now,
            self.cpu_initialization_period,
            self.initial_readiness_delay,
        )
        for name in ignored | unready:
            metrics.pop(name, None)
        requests = calculate_requests(pods, container, resource)
        if not metrics:
            raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
        usage_ratio, utilization, raw = resource_utilization_ratio(
            metrics, requests, target_utilization
        )
        scale_up_with_unready = bool(unready) and usage_ratio > 1.0
        if not scale_up_with_unready and not missing:
            if tolerances.is_within(usage_ratio):
                return current_replicas, utilization, raw
            return _ceil_i32(usage_ratio * ready), utilization, raw
        if missing:
            if usage_ratio < 1.0:
                fallback = max(100, target_utilization)
                for name in missing:
                    metrics[name] = PodMetric(_trunc_div(requests[name] * fallback, 100))
            elif usage_ratio > 1.0:
                for name in missing:
                    metrics[name] = PodMetric(0)
        if scale_up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0)
        new_ratio, _, _ = resource_utilization_ratio(metrics, requests, target_utilization)
        if (
            tolerances.is_within(new_ratio)
            or (usage_ratio < 1.0 and new_ratio > 1.0)
            or (usage_ratio > 1.0 and new_ratio < 1.0)
        ):
            return current_replicas, utilization, raw
        new_replicas = _ceil_i32(new_ratio * len(metrics))
        if (new_ratio < 1.0 and new_replicas > current_replicas) or (
            new_ratio > 1.0 and new_replicas < current_replicas
        ):
            return current_replicas, utilization, raw
        return new_replicas, utilization, raw

    # --- Resource AverageValue and Pods metrics ------------------------------------------------
    def calc_plain_metric_replicas(
        self,
        metrics: dict[str, PodMetric],
        current_replicas: int,
        target_usage: int,
        tolerances: Tolerances,
        resource: str,
        pods: list[dict],
        now: float,
    ) -> tuple[int, int]:
        """calcPlainMetricReplicas -> (replicas, usage milli)."""
        if not pods:
            raise MetricError("no pods returned by selector while calculating replica count")
        metrics = dict(metrics)
        ready, unready, missing, ignored = group_pods(
            pods,
            metrics,
            resource,
            now,
            self.cpu_initialization_period,
            self.initial_readiness_delay,
        )
        for name in ignored | unready:
            metrics.pop(name, None)
        if not metrics:
            raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
        usage_ratio, usage = metric_usage_ratio(metrics, target_usage)
        scale_up_with_unready = bool(unready) and usage_ratio > 1.0
        if not scale_up_with_unready and not missing:
            if tolerances.is_within(usage_ratio):
                return current_replicas, usage
            return _ceil_i32(usage_ratio * ready), usage
        if missing:
            if usage_ratio < 1.0:
                for name in missing:
                    metrics[name] = PodMetric(target_usage)
            elif usage_ratio > 1.0:
                for name in missing:
                    metrics[name] = PodMetric(0)
        if scale_up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0)
        new_ratio, _ = metric_usage_ratio(metrics, target_usage)
        if (
            tolerances.is_within(new_ratio)
            or (usage_ratio < 1.0 and new_ratio > 1.0)
            or (usage_ratio > 1.0 and new_ratio < 1.0)
        ):
            return current_replicas, usage
        new_replicas = _ceil_i32(new_ratio * len(metrics))
        if (new_ratio < 1.0 and new_replicas > current_replicas) or (
            new_ratio > 1.0 and new_replicas < current_replicas
        ):
            return current_replicas, usage
        return new_replicas, usage

    def get_raw_resource_replicas(
        self,
        current_replicas: int,
        target_usage: int,
        resource: str,
        tolerances: Tolerances,
        pods: list[dict],
        metrics: dict[str, PodMetric],
        now: float,
    ) -> tuple[int, int]:
        if not metrics:
            raise MetricError(
                f"unable to get metrics for resource {resource}: "
                "no metrics returned from resource metrics API"
            )
        return self.calc_plain_metric_replicas(
            metrics, current_replicas, target_usage, tolerances, resource, pods, now
        )

    def get_metric_replicas(
        self,
        current_replicas: int,
        target_usage: int,
        metric_name: str,
        tolerances: Tolerances,
        pods: list[dict],
        metrics: dict[str, PodMetric],
        now: float,
    ) -> tuple[int, int]:
        if not metrics:
            raise MetricError(
                f"unable to get metric {metric_name}: no metrics returned from custom metrics API"
            )
        return self.calc_plain_metric_replicas(
            metrics, current_replicas, target_usage, tolerances, "", pods, now
        )

    # --- Object and External ---------------------------------------------------------------------
    @staticmethod
    def ready_pods_count(pods: list[dict]) -> int:
        if not pods:
            raise MetricError(
                "unable to calculate ready pods: "
                "no pods returned by selector while calculating replica count"
            )
        return sum(1 for p in pods if dig(p, "status", "phase") == "Running" and is_pod_ready(p))

    def usage_ratio_replica_count(
        self, current_replicas: int, usage_ratio: float, tolerances: Tolerances, pods: list[dict]
    ) -> int:
        """getUsageRatioReplicaCount (scale-to-zero aware)."""
        if current_replicas != 0:
            if tolerances.is_within(usage_ratio):
                return current_replicas
            return _ceil_i32(usage_ratio * self.ready_pods_count(pods))
        return math.ceil(usage_ratio)

    def get_object_metric_replicas(
        self,
        current_replicas: int,
        target_usage: int,
        usage: int,
        tolerances: Tolerances,
        pods: list[dict],
    ) -> tuple[int, int]:
        return self.usage_ratio_replica_count(
            current_replicas, usage / target_usage, tolerances, pods
        ), usage

    @staticmethod
    def get_object_per_pod_metric_replicas(
        status_replicas: int, target_average_usage: int, usage: int, tolerances: Tolerances
    ) -> tuple[int, int]:
        replicas = status_replicas
        ratio = usage / (target_average_usage * replicas) if replicas else math.inf
        if not tolerances.is_within(ratio):
            replicas = _ceil_i32(usage / target_average_usage)
        avg = math.ceil(usage / status_replicas) if status_replicas else usage
        return replicas, avg

    def get_external_metric_replicas(
        self,
        current_replicas: int,
        target_usage: int,
        values: list[int],
        tolerances: Tolerances,
        pods: list[dict],
    ) -> tuple[int, int]:
        usage = sum(values)
        return self.usage_ratio_replica_count(
            current_replicas, usage / target_usage, tolerances, pods
        ), usage

    @staticmethod
    def get_external_per_pod_metric_replicas(
        status_replicas: int, target_usage_per_pod: int, values: list[int], tolerances: Tolerances
    ) -> tuple[int, int]:
        usage = sum(values)
        replicas = status_replicas
        ratio = usage / (target_usage_per_pod * replicas) if replicas else math.inf
        if not tolerances.is_within(ratio):
            replicas = _ceil_i32(usage / target_usage_per_pod)
        avg = math.ceil(usage / status_replicas) if status_replicas else usage
        return replicas, avg
