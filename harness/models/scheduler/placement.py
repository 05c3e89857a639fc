"""Workload placement: N replicas scheduled one by one as the scheduler's queue would, and the
zone failure what-if (the node lifecycle controller's unreachable taints, the lost pods left
Terminating, replacements scheduled). Each pod goes through schedule_one.py.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.models._k8s import ModelInputError, dig, pod_metadata_of, pod_spec_of
from harness.models.scheduler.interpod_affinity import existing_pod
from harness.models.scheduler.resources import pod_requests
from harness.models.scheduler.schedule_one import schedule
from harness.models.scheduler.topology_spread import ZONE_KEY, parse_constraints


@dataclass
class Placement:
    per_node: dict[str, int]
    per_zone: dict[str, int]
    pending: int
    reasons: list[str]
    assignments: list[dict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "perZone": self.per_zone,
            "perNode": self.per_node,
            "pending": self.pending,
            "reasons": self.reasons,
            "assignments": self.assignments,
        }


@dataclass
class ZoneFailure:
    zone: str
    before: Placement
    after: Placement
    lost: int
    replaced: int
    stranded: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "lost": self.lost,
            "replaced": self.replaced,
            "stranded": self.stranded,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "notes": self.notes,
        }


def _template_pod(deployment: dict) -> dict:
    """A pod of the workload, with the pod-template-hash label a ReplicaSet adds."""
    spec = pod_spec_of(deployment, "deployment")
    meta = pod_metadata_of(deployment)
    labels = dict(meta.get("labels") or {})
    tmpl = dig(deployment, "spec", "template")
    if tmpl is not None and "pod-template-hash" not in labels:
        digest = hashlib.sha256(json.dumps(tmpl, sort_keys=True, default=str).encode()).hexdigest()
        labels["pod-template-hash"] = digest[:10]
    return {
        "metadata": {"labels": labels, "namespace": meta.get("namespace", "default")},
        "spec": spec,
    }


def _zone_of(nodes_by_name: dict[str, dict], name: str) -> str:
    return str(dig(nodes_by_name.get(name, {}), "metadata", "labels", ZONE_KEY, default="<none>"))


def place(
    deployment: dict, nodes: list[dict], replicas: int, existing: list[dict] | None = None
) -> Placement:
    """Schedule `replicas` pods of the workload one by one, like the scheduler's queue."""
    if not isinstance(replicas, int) or replicas < 0:
        raise ModelInputError("replicas must be an integer >= 0", "replicas")
    template = _template_pod(deployment)
    spec, labels, ns = (
        template["spec"],
        template["metadata"]["labels"],
        template["metadata"]["namespace"],
    )
    name_prefix = dig(deployment, "metadata", "name", default="pod")
    pods = [dict(p) for p in (existing or [])]
    want = pod_requests(spec)
    by_name = {dig(n, "metadata", "name"): n for n in nodes}
    assignments: list[dict] = []
    reasons: list[str] = []
    for i in range(replicas):
        node, why = schedule(spec, labels, ns, nodes, pods)
        pod_name = f"{name_prefix}-{i}"
        assignments.append(
            {
                "pod": pod_name,
                "node": node,
                "zone": _zone_of(by_name, node) if node else None,
                "reason": why,
            }
        )
        if node is None:
            if why not in reasons:
                reasons.append(why)
            continue
        pods.append(
            {**existing_pod(pod_name, labels, ns, node, spec.get("affinity")), "_requests": want}
        )
    return _summarize(assignments, reasons, by_name)


def _summarize(assignments: list[dict], reasons: list[str], by_name: dict[str, dict]) -> Placement:
    per_node: Counter[str] = Counter(a["node"] for a in assignments if a["node"])
    per_zone: Counter[str] = Counter(_zone_of(by_name, a["node"]) for a in assignments if a["node"])
    pending = sum(1 for a in assignments if a["node"] is None)
    return Placement(
        dict(sorted(per_node.items())),
        dict(sorted(per_zone.items())),
        pending,
        reasons,
        assignments,
    )


def fail_zone_nodes(nodes: list[dict], zone: str) -> list[dict]:
    """Nodes of `zone` as the node lifecycle controller leaves them when unreachable."""
    out = []
    for n in nodes:
        if dig(n, "metadata", "labels", ZONE_KEY) == zone:
            n = json.loads(json.dumps(n))
            taints = n.setdefault("spec", {}).setdefault("taints", []) or []
            n["spec"]["taints"] = [
                *taints,
                {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            ]
        out.append(n)
    return out


def zone_failure(deployment: dict, nodes: list[dict], replicas: int, zone: str) -> ZoneFailure:
    """Place N replicas, lose every node of `zone`, then schedule replacements for its pods.

    The lost pods are Terminating (deletionTimestamp set, stuck on the unreachable nodes): they no
    longer count for spreading but their zone still is a domain under nodeTaintsPolicy Ignore."""
    zones = {dig(n, "metadata", "labels", ZONE_KEY) for n in nodes}
    if zone not in zones:
        raise ModelInputError(
            f"no node is in zone {zone!r} "
            f"(zones: {', '.join(sorted(map(str, zones - {None}))) or 'none'})",
            "failZone",
        )
    before = place(deployment, nodes, replicas)
    by_name = {dig(n, "metadata", "name"): n for n in nodes}
    template = _template_pod(deployment)
    spec, labels, ns = (
        template["spec"],
        template["metadata"]["labels"],
        template["metadata"]["namespace"],
    )
    want = pod_requests(spec)
    survivors: list[dict] = []
    pods: list[dict] = []
    lost = 0
    for a in before.assignments:
        if a["node"] is None:
            continue
        p = {
            **existing_pod(a["pod"], labels, ns, a["node"], spec.get("affinity")),
            "_requests": want,
        }
        if _zone_of(by_name, a["node"]) == zone:
            p["metadata"]["deletionTimestamp"] = "evicted"
            lost += 1
        else:
            survivors.append(a)
        pods.append(p)
    failed_nodes = fail_zone_nodes(nodes, zone)
    to_place = lost + before.pending
    assignments = [dict(a) for a in survivors]
    reasons: list[str] = []
    replaced = 0
    for i in range(to_place):
        node, why = schedule(spec, labels, ns, failed_nodes, pods)
        name = f"{dig(deployment, 'metadata', 'name', default='pod')}-r{i}"
        assignments.append(
            {
                "pod": name,
                "node": node,
                "zone": _zone_of(by_name, node) if node else None,
                "reason": why,
            }
        )
        if node is None:
            if why not in reasons:
                reasons.append(why)
            continue
        replaced += 1
        pods.append(
            {
                "metadata": {"name": name, "labels": labels, "namespace": ns},
                "spec": {"nodeName": node},
                "_requests": want,
            }
        )
    after = _summarize(assignments, reasons, by_name)
    stranded = max(0, lost - replaced)
    notes = []
    constraints = parse_constraints(spec, labels)
    if stranded and any(
        c.when_unsatisfiable == "DoNotSchedule"
        and c.node_taints_policy == "Ignore"
        and c.topology_key == ZONE_KEY
        for c in constraints
    ):
        notes.append(
            f"zone {zone} still counts as a spread domain with 0 matching pods "
            "(nodeTaintsPolicy: Ignore), "
            "so global minimum is 0 and healthy zones are capped at maxSkew; "
            "set nodeTaintsPolicy: Honor"
        )
    return ZoneFailure(zone, before, after, lost, replaced, stranded, notes)
