"""Scheduler model for replicas of one workload: filters (unschedulable, taints, node affinity,
resources, PodTopologySpread, inter-pod affinity/anti-affinity) and a deterministic score, a
port of the PodTopologySpread plugin (pkg/scheduler/framework/plugins/podtopologyspread:
common.go, filtering.go, scoring.go) and InterPodAffinity (interpod.py).

Scoring blends PodTopologySpread and InterPodAffinity (weight 2 each, the default profile's)
with NodeResourcesFit LeastAllocated (weight 1);
ties go to the node name, where the real scheduler picks at random among equal scores.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.models import interpod
from harness.models._k8s import (
    ModelInputError,
    dig,
    expr_matches,
    pod_metadata_of,
    pod_spec_of,
    selector_matches,
    to_milli,
)

ZONE_KEY = "topology.kubernetes.io/zone"
HOSTNAME_KEY = "kubernetes.io/hostname"
DEFAULT_MAX_PODS = 110
MAX_NODE_SCORE = 100

# Reasons, worded like the scheduler's FailedScheduling message.
R_UNSCHEDULABLE = "node(s) were unschedulable"
R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
R_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
R_TOO_MANY = "Too many pods"


@dataclass
class Constraint:
    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    selector: dict | None
    min_domains: int = 1
    node_affinity_policy: str = "Honor"
    node_taints_policy: str = "Ignore"


@dataclass
class Placement:
    per_node: dict[str, int]
    per_zone: dict[str, int]
    pending: int
    reasons: list[str]
    assignments: list[dict]

    def to_dict(self) -> dict[str, Any]:
        return {"perZone": self.per_zone, "perNode": self.per_node, "pending": self.pending,
                "reasons": self.reasons, "assignments": self.assignments}


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
        return {"zone": self.zone, "lost": self.lost, "replaced": self.replaced, "stranded": self.stranded,
                "before": self.before.to_dict(), "after": self.after.to_dict(), "notes": self.notes}


# --- label selectors and affinity ---------------------------------------------------------------

def node_affinity_matches(spec: dict, node: dict) -> bool:
    labels = dig(node, "metadata", "labels", default={}) or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    terms = dig(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                "nodeSelectorTerms")
    if terms:
        ok = False
        for term in terms:
            exprs = term.get("matchExpressions") or []
            fields = term.get("matchFields") or []
            if not exprs and not fields:
                continue
            if all(expr_matches(e, labels) for e in exprs) and all(
                expr_matches(f, {"metadata.name": dig(node, "metadata", "name")}) for f in fields
            ):
                ok = True
                break
        if not ok:
            return False
    return True


def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def untolerated_taint(spec: dict, node: dict) -> dict | None:
    """First NoSchedule/NoExecute taint the pod does not tolerate."""
    tolerations = spec.get("tolerations") or []
    for taint in dig(node, "spec", "taints", default=[]) or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, taint):
            return taint
    return None


# --- resources -------------------------------------------------------------------------------------

def pod_requests(spec: dict) -> dict[str, int]:
    """Effective requests in milli-units: sum of containers (+ sidecars), max with init containers.

    A resource with only a limit (e.g. nvidia.com/gpu) requests its limit, as API defaulting does."""
    def one(c: dict) -> dict[str, int]:
        res = c.get("resources") or {}
        out = {k: to_milli(v, f"containers[{c.get('name')}].resources.requests.{k}")
               for k, v in (res.get("requests") or {}).items()}
        for k, v in (res.get("limits") or {}).items():
            out.setdefault(k, to_milli(v, f"containers[{c.get('name')}].resources.limits.{k}"))
        return out

    total: Counter[str] = Counter()
    for c in spec.get("containers") or []:
        total.update(one(c))
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") == "Always":
            total.update(one(c))
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") != "Always":
            for k, v in one(c).items():
                total[k] = max(total[k], v)
    return dict(total)


def node_allocatable(node: dict) -> dict[str, int]:
    name = dig(node, "metadata", "name", default="?")
    alloc = dig(node, "status", "allocatable") or dig(node, "status", "capacity") or {}
    return {k: to_milli(v, f"nodes[{name}].status.allocatable.{k}") for k, v in alloc.items()}


# --- topology spread ------------------------------------------------------------------------------

def parse_constraints(spec: dict, pod_labels: dict, field_name: str = "spec.topologySpreadConstraints") -> list[Constraint]:
    out = []
    for i, raw in enumerate(spec.get("topologySpreadConstraints") or []):
        f = f"{field_name}[{i}]"
        if not isinstance(raw.get("maxSkew"), int) or raw["maxSkew"] < 1:
            raise ModelInputError("maxSkew must be an integer >= 1", f + ".maxSkew")
        if not raw.get("topologyKey"):
            raise ModelInputError("topologyKey is required", f + ".topologyKey")
        when = raw.get("whenUnsatisfiable", "DoNotSchedule")
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            raise ModelInputError("must be DoNotSchedule or ScheduleAnyway", f + ".whenUnsatisfiable")
        selector = json.loads(json.dumps(raw.get("labelSelector"))) if raw.get("labelSelector") is not None else None
        keys = raw.get("matchLabelKeys") or []
        if keys and selector is not None:
            exprs = selector.setdefault("matchExpressions", [])
            for k in keys:
                if k in pod_labels:
                    exprs.append({"key": k, "operator": "In", "values": [pod_labels[k]]})
        min_domains = raw.get("minDomains") or 1
        if min_domains != 1 and when != "DoNotSchedule":
            raise ModelInputError("minDomains is only valid with DoNotSchedule", f + ".minDomains")
        nap = raw.get("nodeAffinityPolicy") or "Honor"
        ntp = raw.get("nodeTaintsPolicy") or "Ignore"
        for key, val in (("nodeAffinityPolicy", nap), ("nodeTaintsPolicy", ntp)):
            if val not in ("Honor", "Ignore"):
                raise ModelInputError("must be Honor or Ignore", f"{f}.{key}")
        out.append(Constraint(raw["maxSkew"], raw["topologyKey"], when, selector if selector is not None else None,
                              int(min_domains), nap, ntp))
    return out


def _selector_empty(selector: dict | None) -> bool:
    """labels.Selector.Empty(): `{}` is labels.Everything(); a nil selector is Nothing()."""
    if selector is None:
        return False
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def _count_matching(existing_by_node: dict[str, list[dict]], node_name: str, c: Constraint, namespace: str) -> int:
    """countPodsMatchSelector: an empty selector counts no pod (the incoming one still matches)."""
    if _selector_empty(c.selector):
        return 0
    n = 0
    for p in existing_by_node.get(node_name, ()):
        meta = p.get("metadata") or {}
        if meta.get("deletionTimestamp") is not None:
            continue
        if meta.get("namespace", "default") != namespace:
            continue
        if selector_matches(c.selector, meta.get("labels") or {}):
            n += 1
    return n


def _included(c: Constraint, spec: dict, node: dict) -> bool:
    if c.node_affinity_policy == "Honor" and not node_affinity_matches(spec, node):
        return False
    return not (c.node_taints_policy == "Honor" and untolerated_taint(spec, node) is not None)


def _spread_state(
    constraints: list[Constraint], spec: dict, nodes: list[dict], existing_by_node: dict[str, list[dict]], namespace: str
) -> list[dict[str, int]]:
    """PreFilter: TpValueToMatchNum per constraint over eligible nodes."""
    keys = [c.topology_key for c in constraints]
    state: list[dict[str, int]] = [{} for _ in constraints]
    for node in nodes:
        labels = dig(node, "metadata", "labels", default={}) or {}
        if any(k not in labels for k in keys):
            continue
        name = dig(node, "metadata", "name")
        for i, c in enumerate(constraints):
            if not _included(c, spec, node):
                continue
            dom = labels[c.topology_key]
            state[i][dom] = state[i].get(dom, 0) + _count_matching(existing_by_node, name, c, namespace)
    return state


def _spread_filter(
    constraints: list[Constraint], state: list[dict[str, int]], pod_labels: dict, node: dict
) -> str | None:
    labels = dig(node, "metadata", "labels", default={}) or {}
    for i, c in enumerate(constraints):
        if c.topology_key not in labels:
            return R_SPREAD_LABEL
        counts = state[i]
        min_match = min(counts.values()) if counts else 0
        if len(counts) < c.min_domains:
            min_match = 0
        self_match = 1 if selector_matches(c.selector, pod_labels) else 0
        skew = counts.get(labels[c.topology_key], 0) + self_match - min_match
        if skew > c.max_skew:
            return R_SPREAD
    return None


def _spread_scores(constraints: list[Constraint], spec: dict, feasible: list[dict], all_nodes: list[dict],
                   existing_by_node: dict[str, list[dict]], namespace: str) -> dict[str, float]:
    """scoring.go: Σ cnt*log(#domains+2) + maxSkew-1, inverted-normalized to 0..100."""
    if not constraints:
        return {dig(n, "metadata", "name"): float(MAX_NODE_SCORE) for n in feasible}
    counts: list[dict[str, int]] = [{} for _ in constraints]
    domains: list[set[str]] = [set() for _ in constraints]
    for node in feasible:
        labels = dig(node, "metadata", "labels", default={}) or {}
        for i, c in enumerate(constraints):
            if c.topology_key in labels:
                domains[i].add(labels[c.topology_key])
    for node in all_nodes:
        labels = dig(node, "metadata", "labels", default={}) or {}
        name = dig(node, "metadata", "name")
        for i, c in enumerate(constraints):
            if c.topology_key not in labels or labels[c.topology_key] not in domains[i]:
                continue
            if not _included(c, spec, node):
                continue
            counts[i][labels[c.topology_key]] = counts[i].get(labels[c.topology_key], 0) + _count_matching(
                existing_by_node, name, c, namespace)
    raw: dict[str, float] = {}
    ignored: set[str] = set()
    for node in feasible:
        labels = dig(node, "metadata", "labels", default={}) or {}
        name = dig(node, "metadata", "name")
        if any(c.topology_key not in labels for c in constraints):
            ignored.add(name)
            continue
        s = 0.0
        for i, c in enumerate(constraints):
            w = math.log(len(domains[i]) + 2)
            s += round(counts[i].get(labels[c.topology_key], 0) * w + (c.max_skew - 1))
        raw[name] = s
    if not raw:
        return {dig(n, "metadata", "name"): 0.0 for n in feasible}
    hi, lo = max(raw.values()), min(raw.values())
    out = {}
    for name in (dig(n, "metadata", "name") for n in feasible):
        if name in ignored:
            out[name] = 0.0
        elif hi == 0:
            out[name] = float(MAX_NODE_SCORE)
        else:
            out[name] = MAX_NODE_SCORE * (hi + lo - raw[name]) / hi
    return out


def spread_filter(pod: dict, nodes: list[dict], existing_pods: list[dict]) -> dict[str, str | None]:
    """The PodTopologySpread plugin alone (PreFilter + Filter), as its unit tests run it: no other
    filter (node affinity, taints, resources) excludes a node here. -> {node: None if it fits,
    else the reason: R_SPREAD (Unschedulable) or R_SPREAD_LABEL (UnschedulableAndUnresolvable)}.

    `pod`: a v1 Pod, Deployment or PodSpec; `existing_pods`: v1 Pods with spec.nodeName."""
    spec, labels, ns = _pod_parts(pod)
    by_node: dict[str, list[dict]] = {}
    for p in existing_pods:
        by_node.setdefault(dig(p, "spec", "nodeName", default=""), []).append(p)
    hard = [c for c in parse_constraints(spec, labels) if c.when_unsatisfiable == "DoNotSchedule"]
    if not hard:
        return {dig(n, "metadata", "name"): None for n in nodes}
    state = _spread_state(hard, spec, nodes, by_node, ns)
    return {dig(n, "metadata", "name"): _spread_filter(hard, state, labels, n) for n in nodes}


def default_constraints() -> list[dict]:
    """Cluster-level defaults applied when a pod has no topologySpreadConstraints."""
    return [
        {"maxSkew": 3, "topologyKey": HOSTNAME_KEY, "whenUnsatisfiable": "ScheduleAnyway"},
        {"maxSkew": 5, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "ScheduleAnyway"},
    ]


# --- scheduling one pod ---------------------------------------------------------------------------

def _pod_parts(pod: dict) -> tuple[dict, dict, str]:
    spec = pod_spec_of(pod)
    meta = pod_metadata_of(pod)
    return spec, dict(meta.get("labels") or {}), str(meta.get("namespace") or "default")


def schedule_pod(pod_spec: dict, nodes: list[dict], existing_pods: list[dict]) -> tuple[str | None, str]:
    """Place one pod: (node name, "Scheduled") or (None, FailedScheduling-style message).

    pod_spec: a v1 Pod, a Deployment (its template) or a PodSpec; existing_pods: v1 Pods with
    spec.nodeName (terminating pods, metadata.deletionTimestamp set, still use resources but are
    not counted by spreading)."""
    spec, labels, ns = _pod_parts(pod_spec)
    return _schedule(spec, labels, ns, nodes, existing_pods)


def _schedule(spec: dict, labels: dict, ns: str, nodes: list[dict], existing: list[dict]) -> tuple[str | None, str]:
    if not nodes:
        return None, "0/0 nodes are available: no nodes"
    by_node: dict[str, list[dict]] = {}
    for p in existing:
        by_node.setdefault(dig(p, "spec", "nodeName", default=""), []).append(p)
    want = pod_requests(spec)
    has_own = bool(spec.get("topologySpreadConstraints"))
    constraints = parse_constraints(spec, labels) if has_own else []
    hard = [c for c in constraints if c.when_unsatisfiable == "DoNotSchedule"]
    soft = [c for c in constraints if c.when_unsatisfiable == "ScheduleAnyway"]
    if not has_own:
        soft = parse_constraints({"topologySpreadConstraints": [
            dict(d, labelSelector={"matchLabels": labels}) for d in default_constraints()]}, labels)
    state = _spread_state(hard, spec, nodes, by_node, ns) if hard else []
    nodes_by_name = {dig(n, "metadata", "name"): n for n in nodes}
    inter_pod = interpod.has_inter_pod_terms(spec) or any(
        interpod.has_inter_pod_terms(p.get("spec") or {}) for p in existing)
    failures: Counter[str] = Counter()
    feasible: list[dict] = []
    for node in nodes:
        reason = _filter(spec, labels, want, node, by_node, hard, state)
        if not reason and inter_pod:
            reason = interpod.filter_node(spec, labels, ns, node, nodes_by_name, existing)
        if reason:
            failures[reason] += 1
        else:
            feasible.append(node)
    if not feasible:
        parts = ", ".join(f"{n} {r}" for r, n in sorted(failures.items(), key=lambda x: (-x[1], x[0])))
        return None, f"0/{len(nodes)} nodes are available: {parts}."
    spread = _spread_scores(soft, spec, feasible, nodes, by_node, ns)
    affinity = interpod.scores(spec, labels, ns, feasible, nodes_by_name, existing) if inter_pod else {}
    best: tuple[float, str] | None = None
    for node in feasible:
        name = dig(node, "metadata", "name")
        score = (2 * spread.get(name, 0.0) + 2 * affinity.get(name, 0.0)
                 + _least_allocated(want, node, by_node.get(name, [])))
        key = (-score, name)
        if best is None or key < (best[0], best[1]):
            best = (-score, name)
    assert best is not None
    return best[1], "Scheduled"


def _filter(spec: dict, labels: dict, want: dict[str, int], node: dict, by_node: dict[str, list[dict]],
            hard: list[Constraint], state: list[dict[str, int]]) -> str | None:
    name = dig(node, "metadata", "name")
    if dig(node, "spec", "unschedulable") and not _tolerates(
        spec.get("tolerations") or [], {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ):
        return R_UNSCHEDULABLE
    taint = untolerated_taint(spec, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    if not node_affinity_matches(spec, node):
        return R_AFFINITY
    alloc = node_allocatable(node)
    here = by_node.get(name, [])
    max_pods = alloc.get("pods", DEFAULT_MAX_PODS * 1000) // 1000
    if len(here) + 1 > max_pods:
        return R_TOO_MANY
    used: Counter[str] = Counter()
    for p in here:
        used.update(_cached_requests(p))
    for res, amount in sorted(want.items()):
        if amount == 0 or (res == "ephemeral-storage" and res not in alloc):
            continue
        if used[res] + amount > alloc.get(res, 0):
            return f"Insufficient {res}"
    if hard:
        return _spread_filter(hard, state, labels, node)
    return None


def _cached_requests(pod: dict) -> dict[str, int]:
    cached = pod.get("_requests")
    if cached is None:
        cached = pod_requests(pod.get("spec") or {})
    return cached


def _least_allocated(want: dict[str, int], node: dict, here: list[dict]) -> float:
    alloc = node_allocatable(node)
    used: Counter[str] = Counter()
    for p in here:
        used.update(_cached_requests(p))
    scores = []
    for res in ("cpu", "memory"):
        cap = alloc.get(res, 0)
        if cap <= 0:
            continue
        req = used[res] + want.get(res, 0)
        scores.append(max(0.0, (cap - req) * MAX_NODE_SCORE / cap))
    return sum(scores) / len(scores) if scores else 0.0


# --- workloads ------------------------------------------------------------------------------------

def _template_pod(deployment: dict) -> dict:
    """A pod of the workload, with the pod-template-hash label a ReplicaSet adds."""
    spec = pod_spec_of(deployment, "deployment")
    meta = pod_metadata_of(deployment)
    labels = dict(meta.get("labels") or {})
    tmpl = dig(deployment, "spec", "template")
    if tmpl is not None and "pod-template-hash" not in labels:
        digest = hashlib.sha256(json.dumps(tmpl, sort_keys=True, default=str).encode()).hexdigest()
        labels["pod-template-hash"] = digest[:10]
    return {"metadata": {"labels": labels, "namespace": meta.get("namespace", "default")}, "spec": spec}


def _zone_of(nodes_by_name: dict[str, dict], name: str) -> str:
    return str(dig(nodes_by_name.get(name, {}), "metadata", "labels", ZONE_KEY, default="<none>"))


def place(deployment: dict, nodes: list[dict], replicas: int, existing: list[dict] | None = None) -> Placement:
    """Schedule `replicas` pods of the workload one by one, like the scheduler's queue."""
    if not isinstance(replicas, int) or replicas < 0:
        raise ModelInputError("replicas must be an integer >= 0", "replicas")
    template = _template_pod(deployment)
    spec, labels, ns = template["spec"], template["metadata"]["labels"], template["metadata"]["namespace"]
    name_prefix = dig(deployment, "metadata", "name", default="pod")
    pods = [dict(p) for p in (existing or [])]
    want = pod_requests(spec)
    by_name = {dig(n, "metadata", "name"): n for n in nodes}
    assignments: list[dict] = []
    reasons: list[str] = []
    for i in range(replicas):
        node, why = _schedule(spec, labels, ns, nodes, pods)
        pod_name = f"{name_prefix}-{i}"
        assignments.append({"pod": pod_name, "node": node, "zone": _zone_of(by_name, node) if node else None,
                            "reason": why})
        if node is None:
            if why not in reasons:
                reasons.append(why)
            continue
        pods.append({**interpod.existing_pod(pod_name, labels, ns, node, spec.get("affinity")), "_requests": want})
    return _summarize(assignments, reasons, by_name)


def _summarize(assignments: list[dict], reasons: list[str], by_name: dict[str, dict]) -> Placement:
    per_node: Counter[str] = Counter(a["node"] for a in assignments if a["node"])
    per_zone: Counter[str] = Counter(_zone_of(by_name, a["node"]) for a in assignments if a["node"])
    pending = sum(1 for a in assignments if a["node"] is None)
    return Placement(dict(sorted(per_node.items())), dict(sorted(per_zone.items())), pending, reasons, assignments)


def fail_zone_nodes(nodes: list[dict], zone: str) -> list[dict]:
    """Nodes of `zone` as the node lifecycle controller leaves them when unreachable."""
    out = []
    for n in nodes:
        if dig(n, "metadata", "labels", ZONE_KEY) == zone:
            n = json.loads(json.dumps(n))
            taints = n.setdefault("spec", {}).setdefault("taints", []) or []
            n["spec"]["taints"] = [*taints,
                                   {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                                   {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
        out.append(n)
    return out


def zone_failure(deployment: dict, nodes: list[dict], replicas: int, zone: str) -> ZoneFailure:
    """Place N replicas, lose every node of `zone`, then schedule replacements for its pods.

    The lost pods are Terminating (deletionTimestamp set, stuck on the unreachable nodes): they no
    longer count for spreading but their zone still is a domain under nodeTaintsPolicy Ignore."""
    zones = {dig(n, "metadata", "labels", ZONE_KEY) for n in nodes}
    if zone not in zones:
        raise ModelInputError(f"no node is in zone {zone!r} (zones: {', '.join(sorted(map(str, zones - {None}))) or 'none'})",
                              "failZone")
    before = place(deployment, nodes, replicas)
    by_name = {dig(n, "metadata", "name"): n for n in nodes}
    template = _template_pod(deployment)
    spec, labels, ns = template["spec"], template["metadata"]["labels"], template["metadata"]["namespace"]
    want = pod_requests(spec)
    survivors: list[dict] = []
    pods: list[dict] = []
    lost = 0
    for a in before.assignments:
        if a["node"] is None:
            continue
        p = {**interpod.existing_pod(a["pod"], labels, ns, a["node"], spec.get("affinity")), "_requests": want}
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
        node, why = _schedule(spec, labels, ns, failed_nodes, pods)
        name = f"{dig(deployment, 'metadata', 'name', default='pod')}-r{i}"
        assignments.append({"pod": name, "node": node, "zone": _zone_of(by_name, node) if node else None, "reason": why})
        if node is None:
            if why not in reasons:
                reasons.append(why)
            continue
        replaced += 1
        pods.append({"metadata": {"name": name, "labels": labels, "namespace": ns}, "spec": {"nodeName": node},
                     "_requests": want})
    after = _summarize(assignments, reasons, by_name)
    stranded = max(0, lost - replaced)
    notes = []
    constraints = parse_constraints(spec, labels)
    if stranded and any(c.when_unsatisfiable == "DoNotSchedule" and c.node_taints_policy == "Ignore"
                        and c.topology_key == ZONE_KEY for c in constraints):
        notes.append(f"zone {zone} still counts as a spread domain with 0 matching pods (nodeTaintsPolicy: Ignore), "
                     "so global minimum is 0 and healthy zones are capped at maxSkew; set nodeTaintsPolicy: Honor")
    return ZoneFailure(zone, before, after, lost, replaced, stranded, notes)
