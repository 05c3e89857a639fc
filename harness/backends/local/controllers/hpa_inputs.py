"""What the local HPA controller reads, as a cluster would serve it: v1 Pods with their
container resources, metrics.k8s.io PodMetrics with metrics-server's semantics (CPU as a rate
over its resolution), and Pods metrics scraped from each replica's /metrics."""

from __future__ import annotations

from typing import Any

from harness.backends.local.podspec.pod_template import PodTemplate
from harness.backends.observe import Pod, ResourceSample


def pod_metrics_from_samples(
    samples: list[ResourceSample], containers: dict[str, str], resolution_s: float
) -> list[dict[str, Any]]:
    """metrics.k8s.io PodMetrics as metrics-server serves them: CPU is the rate between the
    latest reading and the one about `resolution_s` earlier (`window`), memory the latest working
    set. A pod read for less than one resolution has no metrics yet, like a pod metrics-server
    has scraped once."""
    by_pod: dict[str, list[ResourceSample]] = {}
    for s in samples:
        if s.pod in containers and s.cpu_usage_s is not None:
            by_pod.setdefault(s.pod, []).append(s)
    out = []
    for pod, series in by_pod.items():
        last = series[-1]
        earlier = [s for s in series if s.time <= last.time - resolution_s]
        if not earlier:
            continue
        first = earlier[-1]
        used = (last.cpu_usage_s or 0.0) - (first.cpu_usage_s or 0.0)
        if used < 0:  # counter reset (a restarted container without a pod cgroup)
            continue
        window = last.time - first.time
        if window <= 0:
            continue
        usage = {"cpu": f"{int(used / window * 1000)}m"}
        if last.memory_bytes is not None:
            usage["memory"] = str(last.memory_bytes)
        out.append(
            {
                "metadata": {"name": pod},
                "timestamp": last.time,
                "window": f"{window:.3f}s",
                "containers": [{"name": containers[pod], "usage": usage}],
            }
        )
    return out


def v1_pod(p: Pod, template: PodTemplate) -> dict[str, Any]:
    """The v1 Pod the HPA calculator reads. Its containers are the one the kubelet runs (the main
    container) with the template's resources, so Resource metrics pair its usage with its
    requests."""
    c = template.main
    return {
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "labels": p.labels,
            "creationTimestamp": p.creationTimestamp,
            "deletionTimestamp": p.deletionTimestamp,
        },
        "spec": {
            "nodeName": p.nodeName,
            "containers": [{"name": c.name, "resources": c.raw.get("resources") or {}}],
        },
        "status": {
            "phase": p.phase,
            "startTime": p.startTime,
            "podIP": p.podIP,
            "conditions": [cond.model_dump() for cond in p.conditions],
        },
    }
