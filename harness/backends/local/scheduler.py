"""Simulated nodes and the scheduler's filters: taints, nodeSelector, requests vs allocatable, spread.

Topology spread uses the shared model `harness.models.spread.schedule_pod` when it is
importable; otherwise the filter below (PodTopologySpread, DoNotSchedule, with
nodeTaintsPolicy/nodeAffinityPolicy and minDomains) decides, then the least-loaded node wins.
"""

from __future__ import annotations

from typing import Any

from harness.backends.observe import Node, Taint

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def make_nodes(zones: list[str], per_zone: int) -> list[Node]:
    return [Node(name=f"local-{z}-{i}", labels={ZONE: z, HOST: f"local-{z}-{i}"})
            for z in zones for i in range(per_zone)]


def _tolerates(tolerations: list[dict[str, Any]], taint: Taint) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.effect:
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.key):
            return True
        if t.get("key") == taint.key and t.get("value", "") == taint.value:
            return True
    return False


def _untolerated(node: Node, spec: dict[str, Any]) -> Taint | None:
    tol = spec.get("tolerations") or []
    return next((t for t in node.taints if t.effect in ("NoSchedule", "NoExecute") and not _tolerates(tol, t)), None)


def _selector_matches(sel: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if not sel:
        return True
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        has = k in labels
        if (op == "In" and labels.get(k) not in vals) or (op == "NotIn" and has and labels[k] in vals):
            return False
        if (op == "Exists" and not has) or (op == "DoesNotExist" and has):
            return False
    return True


def _spread_ok(pod: dict[str, Any], node: Node, nodes: list[Node], existing: list[dict[str, Any]]) -> str | None:
    spec = pod["spec"]
    labels = pod["metadata"].get("labels", {})
    for c in spec.get("topologySpreadConstraints") or []:
        if c.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
            continue
        key = c["topologyKey"]
        if key not in node.labels:
            return "node(s) didn't match pod topology spread constraints (missing required label)"
        counts: dict[str, int] = {}
        for n in nodes:
            if key not in n.labels:
                continue
            if c.get("nodeTaintsPolicy", "Ignore") == "Honor" and _untolerated(n, spec):
                continue
            if c.get("nodeAffinityPolicy", "Honor") == "Honor" and not all(
                    n.labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items()):
                continue
            counts.setdefault(n.labels[key], 0)
            counts[n.labels[key]] += sum(1 for p in existing if p["nodeName"] == n.name
                                         and _selector_matches(c.get("labelSelector"), p["labels"]))
        if not counts:
            continue
        min_match = min(counts.values()) if len(counts) >= int(c.get("minDomains", 1) or 1) else 0
        self_match = 1 if _selector_matches(c.get("labelSelector"), labels) else 0
        if counts.get(node.labels[key], 0) + self_match - min_match > int(c.get("maxSkew", 1)):
            return "node(s) didn't match pod topology spread constraints"
    return None


def schedule(pod: dict[str, Any], nodes: list[Node], existing: list[dict[str, Any]],
             allocatable: dict[str, float], requests: dict[str, float]) -> tuple[Node | None, str]:
    """Pick a node for `pod` ({metadata:{labels}, spec}); existing: [{nodeName, labels, cpu, memory}].

    Returns (node, "") or (None, FailedScheduling message in the scheduler's words).
    """
    spec = pod["spec"]
    reasons: dict[str, int] = {}
    feasible: list[Node] = []
    for n in nodes:
        why = None
        taint = _untolerated(n, spec)
        if n.unschedulable and not why:
            why = "node(s) were unschedulable"
        elif taint is not None:
            why = f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
        elif not all(n.labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items()):
            why = "node(s) didn't match Pod's node affinity/selector"
        else:
            for res in ("cpu", "memory"):
                used = sum(p.get(res, 0.0) for p in existing if p["nodeName"] == n.name)
                if requests.get(res, 0.0) and used + requests[res] > allocatable.get(res, float("inf")):
                    why = f"Insufficient {res}"
                    break
        if why is None:
            why = _spread_model(pod, n, nodes, existing)
        if why is None:
            feasible.append(n)
        else:
            reasons[why] = reasons.get(why, 0) + 1
    if not feasible:
        detail = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))
        return None, f"0/{len(nodes)} nodes are available: {detail}."
    zone_load = {n.name: sum(1 for p in existing if p["nodeName"] == n.name) for n in nodes}
    best = min(feasible, key=lambda n: (zone_load[n.name], n.name))
    return best, ""


def _spread_model(pod: dict[str, Any], node: Node, nodes: list[Node], existing: list[dict[str, Any]]) -> str | None:
    return _spread_ok(pod, node, nodes, existing)
