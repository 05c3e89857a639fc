"""One scheduling cycle for one pod, a port of pkg/scheduler/schedule_one.go (schedulePod:
findNodesThatFitPod, prioritizeNodes, selectHost) over the default profile's plugins:

Filter, in order: NodeUnschedulable, TaintToleration, NodeAffinity (predicates.py),
NodeResourcesFit (resources.py), PodTopologySpread (topology_spread.py), InterPodAffinity
(interpod_affinity.py). Score: PodTopologySpread and InterPodAffinity (weight 2 each, the
default profile's) + NodeResourcesFit LeastAllocated (weight 1); ties go to the node name,
where the real scheduler picks at random among equal scores.
"""

from __future__ import annotations

from collections import Counter

from harness.models._k8s import dig, pod_parts
from harness.models.scheduler.interpod_affinity import filter_node as inter_pod_filter
from harness.models.scheduler.interpod_affinity import has_inter_pod_terms
from harness.models.scheduler.interpod_affinity import scores as inter_pod_scores
from harness.models.scheduler.predicates import node_predicates
from harness.models.scheduler.resources import fit_filter, least_allocated, pod_requests
from harness.models.scheduler.topology_spread import (
    Constraint,
    constraints_for,
    spread_filter_node,
    spread_scores,
    spread_state,
)


def schedule_pod(
    pod_spec: dict, nodes: list[dict], existing_pods: list[dict]
) -> tuple[str | None, str]:
    """Place one pod: (node name, "Scheduled") or (None, FailedScheduling-style message).

    pod_spec: a v1 Pod, a Deployment (its template) or a PodSpec; existing_pods: v1 Pods with
    spec.nodeName (terminating pods, metadata.deletionTimestamp set, still use resources but are
    not counted by spreading)."""
    spec, labels, ns = pod_parts(pod_spec)
    return schedule(spec, labels, ns, nodes, existing_pods)


def schedule(
    spec: dict, labels: dict, ns: str, nodes: list[dict], existing: list[dict]
) -> tuple[str | None, str]:
    """schedule_pod for a pod already split into (spec, labels, namespace)."""
    if not nodes:
        return None, "0/0 nodes are available: no nodes"
    by_node: dict[str, list[dict]] = {}
    for p in existing:
        by_node.setdefault(dig(p, "spec", "nodeName", default=""), []).append(p)
    want = pod_requests(spec)
    hard, soft = constraints_for(spec, labels)
    state = spread_state(hard, spec, nodes, by_node, ns) if hard else []
    nodes_by_name = {dig(n, "metadata", "name"): n for n in nodes}
    inter_pod = has_inter_pod_terms(spec) or any(
        has_inter_pod_terms(p.get("spec") or {}) for p in existing
    )
    failures: Counter[str] = Counter()
    feasible: list[dict] = []
    for node in nodes:
        reason = _filter(spec, labels, want, node, by_node, hard, state)
        if not reason and inter_pod:
            reason = inter_pod_filter(spec, labels, ns, node, nodes_by_name, existing)
        if reason:
            failures[reason] += 1
        else:
            feasible.append(node)
    if not feasible:
        parts = ", ".join(
            f"{n} {r}" for r, n in sorted(failures.items(), key=lambda x: (-x[1], x[0]))
        )
        return None, f"0/{len(nodes)} nodes are available: {parts}."
    spread = spread_scores(soft, spec, feasible, nodes, by_node, ns)
    affinity = (
        inter_pod_scores(spec, labels, ns, feasible, nodes_by_name, existing) if inter_pod else {}
    )
    best: tuple[float, str] | None = None
    for node in feasible:
        name = dig(node, "metadata", "name")
        score = (
            2 * spread.get(name, 0.0)
            + 2 * affinity.get(name, 0.0)
            + least_allocated(want, node, by_node.get(name, []))
        )
        key = (-score, name)
        if best is None or key < (best[0], best[1]):
            best = (-score, name)
    assert best is not None
    return best[1], "Scheduled"


def _filter(
    spec: dict,
    labels: dict,
    want: dict[str, int],
    node: dict,
    by_node: dict[str, list[dict]],
    hard: list[Constraint],
    state: list[dict[str, int]],
) -> str | None:
    """The filter plugins before InterPodAffinity, in order; the first failure's reason."""
    reason = node_predicates(spec, node) or fit_filter(
        want, node, by_node.get(dig(node, "metadata", "name"), [])
    )
    if reason or not hard:
        return reason
    return spread_filter_node(hard, state, labels, node)
