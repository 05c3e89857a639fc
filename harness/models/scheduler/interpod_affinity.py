"""Inter-pod affinity and anti-affinity: the InterPodAffinity filter and score
(pkg/scheduler/framework/plugins/interpodaffinity: filtering.go, scoring.go).

Filter, for a candidate node, in the plugin's order:
* the incoming pod's required affinity terms need, for every term, a pod matching all the terms
  in the node's domain -- unless no pod in the cluster matches them all and the incoming pod
  does (the first replica of a workload that co-locates with itself);
* an incoming required anti-affinity term forbids every domain holding a pod it matches
  (a node without the term's topologyKey label is not in any domain: allowed);
* an existing pod's required anti-affinity term that matches the incoming pod forbids the
  existing pod's topology domain ("didn't satisfy existing pods anti-affinity rules").

Score: per node, the weights of the incoming pod's preferred terms (and of the existing pods'
preferred terms toward it) times the matching pods in the node's domain, anti-affinity
negative; normalised to 0..100 over the feasible nodes (0 for all when they are equal).
Namespaces: a term's `namespaces`, else the owning pod's; `namespaceSelector: {}` means all.
"""

from __future__ import annotations

from typing import Any

from harness.models._k8s import dig, selector_matches

R_POD_AFFINITY = "node(s) didn't match pod affinity rules"
R_POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
R_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
MAX_NODE_SCORE = 100

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def _required(spec: dict, kind: str) -> list[dict]:
    return list(dig(spec, "affinity", kind, REQUIRED, default=None) or [])


def _preferred(spec: dict, kind: str) -> list[tuple[int, dict]]:
    return [
        (int(w.get("weight", 0)), w.get("podAffinityTerm") or {})
        for w in dig(spec, "affinity", kind, PREFERRED, default=None) or []
    ]


def has_inter_pod_terms(spec: dict) -> bool:
    return bool(
        dig(spec, "affinity", "podAffinity", default=None)
        or dig(spec, "affinity", "podAntiAffinity", default=None)
    )


def _term_matches(term: dict, labels: dict, namespace: str, owner_namespace: str) -> bool:
    if term.get("namespaceSelector") == {}:
        in_ns = True
    else:
        in_ns = namespace in (term.get("namespaces") or [owner_namespace])
    return in_ns and selector_matches(term.get("labelSelector"), labels)


def _parts(pod: dict) -> tuple[dict, dict, str, str]:
    """(spec, labels, namespace, nodeName) of an existing v1 pod."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    return (
        spec,
        dict(meta.get("labels") or {}),
        str(meta.get("namespace") or "default"),
        str(spec.get("nodeName") or ""),
    )


def _labels(node: dict | None) -> dict:
    return dig(node or {}, "metadata", "labels", default={}) or {}


def _same_domain(key: str, node_labels: dict, other: dict | None) -> bool:
    other_labels = _labels(other)
    return key in node_labels and key in other_labels and other_labels[key] == node_labels[key]


def filter_node(
    spec: dict,
    labels: dict,
    ns: str,
    node: dict,
    nodes_by_name: dict[str, dict],
    existing: list[dict],
) -> str | None:
    """The first failing rule, in the plugin's order: affinity, anti-affinity, existing pods'
    anti-affinity."""
    node_labels = _labels(node)
    parts = [_parts(p) for p in existing]
    affinity = _required(spec, "podAffinity")
    if affinity:
        # pods matching ALL the terms, and whether one sits in this node's domain for every term
        group = [
            n
            for _, p_labels, p_ns, n in parts
            if all(_term_matches(t, p_labels, p_ns, ns) for t in affinity)
        ]
        here = all(
            any(
                _same_domain(str(t.get("topologyKey", "")), node_labels, nodes_by_name.get(n))
                for n in group
            )
            for t in affinity
        )
        first_of_group = not group and all(_term_matches(t, labels, ns, ns) for t in affinity)
        if not here and not first_of_group:
            return R_POD_AFFINITY
    for term in _required(spec, "podAntiAffinity"):
        key = str(term.get("topologyKey", ""))
        for _, p_labels, p_ns, p_node in parts:
            if _term_matches(term, p_labels, p_ns, ns) and _same_domain(
                key, node_labels, nodes_by_name.get(p_node)
            ):
                return R_POD_ANTI_AFFINITY
    for p_spec, _, p_ns, p_node in parts:
        for term in _required(p_spec, "podAntiAffinity"):
            key = str(term.get("topologyKey", ""))
            if _term_matches(term, labels, ns, p_ns) and _same_domain(
                key, node_labels, nodes_by_name.get(p_node)
            ):
                return R_EXISTING_ANTI_AFFINITY
    return None


def scores(
    spec: dict,
    labels: dict,
    ns: str,
    feasible: list[dict],
    nodes_by_name: dict[str, dict],
    existing: list[dict],
) -> dict[str, float]:
    names = [str(dig(n, "metadata", "name")) for n in feasible]
    raw = dict.fromkeys(names, 0.0)
    parts = [_parts(p) for p in existing]
    weighted = [(float(w), t) for w, t in _preferred(spec, "podAffinity")]
    weighted += [(-float(w), t) for w, t in _preferred(spec, "podAntiAffinity")]
    for node, name in zip(feasible, names, strict=True):
        node_labels = _labels(node)
        for weight, term in weighted:
            key = str(term.get("topologyKey", ""))
            raw[name] += weight * sum(
                1
                for _, p_labels, p_ns, p_node in parts
                if _term_matches(term, p_labels, p_ns, ns)
                and _same_domain(key, node_labels, nodes_by_name.get(p_node))
            )
        for p_spec, _, p_ns, p_node in parts:  # existing pods' preferences toward the incoming one
            if p_node not in nodes_by_name:
                continue
            for sign, kind in ((1, "podAffinity"), (-1, "podAntiAffinity")):
                for w, term in _preferred(p_spec, kind):
                    key = str(term.get("topologyKey", ""))
                    if _term_matches(term, labels, ns, p_ns) and _same_domain(
                        key, node_labels, nodes_by_name[p_node]
                    ):
                        raw[name] += sign * w
    if not raw:
        return {}
    hi, lo = max(raw.values()), min(raw.values())
    if hi == lo:
        return dict.fromkeys(names, 0.0)
    return {n: MAX_NODE_SCORE * (v - lo) / (hi - lo) for n, v in raw.items()}


def existing_pod(
    name: str,
    labels: dict,
    namespace: str,
    node: str,
    affinity: Any,
    deletion_timestamp: float | None = None,
) -> dict:
    """A v1 pod as the scheduler model reads it: its affinity travels so existing pods' terms
    count; a terminating pod (deletionTimestamp) still holds its node but is not spread-counted."""
    spec: dict = {"nodeName": node}
    if affinity:
        spec["affinity"] = affinity
    meta: dict = {"name": name, "labels": labels, "namespace": namespace}
    if deletion_timestamp is not None:
        meta["deletionTimestamp"] = deletion_timestamp
    return {"metadata": meta, "spec": spec}
