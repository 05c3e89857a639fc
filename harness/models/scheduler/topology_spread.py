"""PodTopologySpread: parsing, PreFilter + Filter and Score, a port of
pkg/scheduler/framework/plugins/podtopologyspread (common.go, filtering.go, scoring.go), with
the cluster-level default constraints (plugin.go, systemDefaultConstraints).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from harness.models._k8s import ModelInputError, dig, pod_parts, selector_matches
from harness.models.scheduler.predicates import node_affinity_matches, untolerated_taint

ZONE_KEY = "topology.kubernetes.io/zone"
HOSTNAME_KEY = "kubernetes.io/hostname"
MAX_NODE_SCORE = 100

# Reasons, worded like the scheduler's FailedScheduling message.
R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"


@dataclass
class Constraint:
    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    selector: dict | None
    min_domains: int = 1
    node_affinity_policy: str = "Honor"
    node_taints_policy: str = "Ignore"


def parse_constraints(
    spec: dict, pod_labels: dict, field_name: str = "spec.topologySpreadConstraints"
) -> list[Constraint]:
    out = []
    for i, raw in enumerate(spec.get("topologySpreadConstraints") or []):
        f = f"{field_name}[{i}]"
        if not isinstance(raw.get("maxSkew"), int) or raw["maxSkew"] < 1:
            raise ModelInputError("maxSkew must be an integer >= 1", f + ".maxSkew")
        if not raw.get("topologyKey"):
            raise ModelInputError("topologyKey is required", f + ".topologyKey")
        when = raw.get("whenUnsatisfiable", "DoNotSchedule")
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            raise ModelInputError(
                "must be DoNotSchedule or ScheduleAnyway", f + ".whenUnsatisfiable"
            )
        selector = (
            json.loads(json.dumps(raw.get("labelSelector")))
            if raw.get("labelSelector") is not None
            else None
        )
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
        out.append(
            Constraint(
                raw["maxSkew"],
                raw["topologyKey"],
                when,
                selector if selector is not None else None,
                int(min_domains),
                nap,
                ntp,
            )
        )
    return out


def default_constraints() -> list[dict]:
    """Cluster-level defaults applied when a pod has no topologySpreadConstraints."""
    return [
        {"maxSkew": 3, "topologyKey": HOSTNAME_KEY, "whenUnsatisfiable": "ScheduleAnyway"},
        {"maxSkew": 5, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "ScheduleAnyway"},
    ]


def constraints_for(spec: dict, labels: dict) -> tuple[list[Constraint], list[Constraint]]:
    """(hard, soft): the pod's own constraints, else the defaults (soft) selecting its labels."""
    if not spec.get("topologySpreadConstraints"):
        return [], parse_constraints(
            {
                "topologySpreadConstraints": [
                    dict(d, labelSelector={"matchLabels": labels}) for d in default_constraints()
                ]
            },
            labels,
        )
    constraints = parse_constraints(spec, labels)
    return (
        [c for c in constraints if c.when_unsatisfiable == "DoNotSchedule"],
        [c for c in constraints if c.when_unsatisfiable == "ScheduleAnyway"],
    )


def _selector_empty(selector: dict | None) -> bool:
    """labels.Selector.Empty(): `{}` is labels.Everything(); a nil selector is Nothing()."""
    if selector is None:
        return False
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def _count_matching(
    existing_by_node: dict[str, list[dict]], node_name: str, c: Constraint, namespace: str
) -> int:
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
    """nodeAffinityPolicy / nodeTaintsPolicy: does the node count for the constraint?"""
    if c.node_affinity_policy == "Honor" and not node_affinity_matches(spec, node):
        return False
    return not (c.node_taints_policy == "Honor" and untolerated_taint(spec, node) is not None)


def spread_state(
    constraints: list[Constraint],
    spec: dict,
    nodes: list[dict],
    existing_by_node: dict[str, list[dict]],
    namespace: str,
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
            state[i][dom] = state[i].get(dom, 0) + _count_matching(
                existing_by_node, name, c, namespace
            )
    return state


def spread_filter_node(
    constraints: list[Constraint], state: list[dict[str, int]], pod_labels: dict, node: dict
) -> str | None:
    """Filter: the skew the pod would cause in the node's domain, per constraint."""
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


def spread_scores(
    constraints: list[Constraint],
    spec: dict,
    feasible: list[dict],
    all_nodes: list[dict],
    existing_by_node: dict[str, list[dict]],
    namespace: str,
) -> dict[str, float]:
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
            counts[i][labels[c.topology_key]] = counts[i].get(
                labels[c.topology_key], 0
            ) + _count_matching(existing_by_node, name, c, namespace)
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
    spec, labels, ns = pod_parts(pod)
    by_node: dict[str, list[dict]] = {}
    for p in existing_pods:
        by_node.setdefault(dig(p, "spec", "nodeName", default=""), []).append(p)
    hard = [c for c in parse_constraints(spec, labels) if c.when_unsatisfiable == "DoNotSchedule"]
    if not hard:
        return {dig(n, "metadata", "name"): None for n in nodes}
    state = spread_state(hard, spec, nodes, by_node, ns)
    return {dig(n, "metadata", "name"): spread_filter_node(hard, state, labels, n) for n in nodes}
