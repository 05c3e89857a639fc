"""The scheduler: simulated zoned nodes, and each pending pod placed by the shared model.

The filter and score (taints, nodeSelector/affinity, pod (anti-)affinity, requests vs
allocatable, topology spread with nodeTaintsPolicy/nodeAffinityPolicy/minDomains,
ScheduleAnyway scoring) are `harness.models.scheduler.schedule_pod`'s, so the local backend
places pods exactly as `gauntlet model spread` and `gauntlet check` predict.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psutil

from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.podspec.pod_template import PodTemplate
from harness.backends.observe import Node
from harness.models.scheduler import existing_pod, schedule_pod
from harness.quantity import cpu_cores, memory_bytes

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def make_nodes(zones: list[str], per_zone: int) -> list[Node]:
    return [
        Node(name=f"local-{z}-{i}", labels={ZONE: z, HOST: f"local-{z}-{i}"})
        for z in zones
        for i in range(per_zone)
    ]


def resolve_allocatable(alloc: dict[str, Any] | None) -> dict[str, float]:
    """Per node: the given cpu/memory quantities, else this machine's cores and memory."""
    alloc = alloc or {}
    return {
        "cpu": cpu_cores(alloc.get("cpu", os.cpu_count() or 1)),
        "memory": float(memory_bytes(alloc.get("memory", psutil.virtual_memory().total))),
    }


def _node_dict(node: Node, allocatable: dict[str, float]) -> dict[str, Any]:
    alloc = {
        k: (f"{v:.3f}" if k == "cpu" else str(int(v)))
        for k, v in allocatable.items()
        if v != float("inf")
    }
    return {
        "metadata": {"name": node.name, "labels": dict(node.labels)},
        "spec": {
            "unschedulable": node.unschedulable,
            "taints": [t.model_dump() for t in node.taints],
        },
        "status": {"allocatable": alloc},
    }


def _pod_dict(p: dict[str, Any], namespace: str) -> dict[str, Any]:
    requests = {"cpu": f"{p.get('cpu', 0.0):.3f}", "memory": str(int(p.get("memory", 0)))}
    pod = existing_pod(
        p.get("name", ""),
        p["labels"],
        namespace,
        p["nodeName"],
        p.get("affinity"),
        p.get("deleted"),
    )
    pod["spec"]["containers"] = [{"name": "c", "resources": {"requests": requests}}]
    return pod


def _requests(template: PodTemplate) -> dict[str, float]:
    c = template.main
    return {"cpu": c.cpu_request or 0.0, "memory": float(c.memory_request or 0)}


def schedule(
    pod: dict[str, Any],
    nodes: list[Node],
    existing: list[dict[str, Any]],
    allocatable: dict[str, float],
    namespace: str = "default",
) -> tuple[Node | None, str]:
    """Pick a node for `pod` ({metadata:{labels}, spec}); existing: [{nodeName, labels, cpu, memory,
    affinity}] (their pod (anti-)affinity terms count too).

    Returns (node, "") or (None, the FailedScheduling message in the scheduler's words).
    """
    pod = {"metadata": {**pod.get("metadata", {}), "namespace": namespace}, "spec": pod["spec"]}
    name, why = schedule_pod(
        pod,
        [_node_dict(n, allocatable) for n in nodes],
        [_pod_dict(p, namespace) for p in existing],
    )
    if name is None:
        return None, why
    return next(n for n in nodes if n.name == name), ""


class SchedulerController:
    def __init__(
        self,
        state: ClusterState,
        allocatable: dict[str, float],
        allocate_ip: Callable[[], str],
        run_pod: Callable[[LocalPod], None],
    ) -> None:
        self.state = state
        self.allocatable = allocatable
        self.allocate_ip = allocate_ip  # under the lock
        self.run_pod = run_pod  # the node's kubelet takes the bound pod

    def schedule_pending(self) -> None:
        s = self.state
        with s.lock:
            pending = [p for p in s.pods.values() if p.node_name is None and p.deletion is None]
            pending.sort(key=lambda p: p.creation)
        for p in pending:
            with s.lock:
                # terminating pods too, as in the scheduler's cache: they hold their node's
                # resources and anti-affinity domain until they are gone
                existing = [
                    {
                        "name": q.name,
                        "nodeName": q.node_name,
                        "labels": q.labels,
                        "deleted": q.deletion,
                        "affinity": q.template.spec.get("affinity"),
                        **_requests(q.template),
                    }
                    for q in s.pods.values()
                    if q.node_name and not q.finished
                ]
                node, why = schedule(
                    {"metadata": {"labels": p.labels}, "spec": p.template.spec},
                    s.nodes,
                    existing,
                    self.allocatable,
                    s.namespace,
                )
            if node is None:
                cond = p.conditions.get("PodScheduled")
                if cond is None or cond.message != why:
                    with s.lock:
                        p.conditions.pop("PodScheduled", None)
                        p.set_condition("PodScheduled", "False", "Unschedulable", why)
                s.events.record(
                    "Pod",
                    p.name,
                    "FailedScheduling",
                    why,
                    type_="Warning",
                    source="default-scheduler",
                )
                continue
            self.bind(p, node)

    def bind(self, p: LocalPod, node: Node) -> None:
        s = self.state
        with s.lock:
            if p.deletion is not None:  # deleted while it waited for the scheduler
                return
            p.node_name, p.zone = node.name, node.zone
            p.pod_ip = self.allocate_ip()
            p.set_condition("PodScheduled", "True")
        s.events.record(
            "Pod",
            p.name,
            "Scheduled",
            f"Successfully assigned {s.namespace}/{p.name} to {node.name}",
            source="default-scheduler",
        )
        self.run_pod(p)
