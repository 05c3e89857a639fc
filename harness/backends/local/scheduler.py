"""Simulated nodes, and one scheduling decision made by the shared model.

The filter and score (taints, nodeSelector/affinity, pod (anti-)affinity, requests vs allocatable, topology spread
with nodeTaintsPolicy/nodeAffinityPolicy/minDomains, ScheduleAnyway scoring) are those of
`harness.models.spread.schedule_pod`, so the local backend places pods exactly as `gauntlet
model spread` and `gauntlet check` predict.
"""

from __future__ import annotations

from typing import Any

from harness.backends.observe import Node
from harness.models.interpod import existing_pod
from harness.models.spread import schedule_pod

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def make_nodes(zones: list[str], per_zone: int) -> list[Node]:
    return [Node(name=f"local-{z}-{i}", labels={ZONE: z, HOST: f"local-{z}-{i}"})
            for z in zones for i in range(per_zone)]


def _node_dict(node: Node, allocatable: dict[str, float]) -> dict[str, Any]:
    alloc = {k: (f"{v:.3f}" if k == "cpu" else str(int(v))) for k, v in allocatable.items() if v != float("inf")}
    return {
        "metadata": {"name": node.name, "labels": dict(node.labels)},
        "spec": {"unschedulable": node.unschedulable, "taints": [t.model_dump() for t in node.taints]},
        "status": {"allocatable": alloc},
    }


def _pod_dict(p: dict[str, Any], namespace: str) -> dict[str, Any]:
    requests = {"cpu": f"{p.get('cpu', 0.0):.3f}", "memory": str(int(p.get("memory", 0)))}
    pod = existing_pod(p.get("name", ""), p["labels"], namespace, p["nodeName"], p.get("affinity"), p.get("deleted"))
    pod["spec"]["containers"] = [{"name": "c", "resources": {"requests": requests}}]
    return pod


def schedule(pod: dict[str, Any], nodes: list[Node], existing: list[dict[str, Any]],
             allocatable: dict[str, float], namespace: str = "default") -> tuple[Node | None, str]:
    """Pick a node for `pod` ({metadata:{labels}, spec}); existing: [{nodeName, labels, cpu, memory,
    affinity}] (their pod (anti-)affinity terms count too).

    Returns (node, "") or (None, the FailedScheduling message in the scheduler's words).
    """
    pod = {"metadata": {**pod.get("metadata", {}), "namespace": namespace}, "spec": pod["spec"]}
    name, why = schedule_pod(
        pod, [_node_dict(n, allocatable) for n in nodes], [_pod_dict(p, namespace) for p in existing]
    )
    if name is None:
        return None, why
    return next(n for n in nodes if n.name == name), ""
