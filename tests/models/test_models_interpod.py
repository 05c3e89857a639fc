"""Inter-pod affinity / anti-affinity in the scheduler model.

Upstream: InterPodAffinity filtering.go / scoring.go.
"""

from __future__ import annotations

from typing import Any

from harness.models.scheduler import (
    R_EXISTING_ANTI_AFFINITY,
    R_POD_AFFINITY,
    R_POD_ANTI_AFFINITY,
    place,
    schedule_pod,
    zone_failure,
)

ZK = "topology.kubernetes.io/zone"
HK = "kubernetes.io/hostname"


def node(name: str, zone: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {HK: name, ZK: zone}},
        "spec": {},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}},
    }


NODES = [node("a1", "a"), node("a2", "a"), node("b1", "b"), node("c1", "c")]


def term(key: str, labels: dict[str, str], **kw: Any) -> dict[str, Any]:
    return {"topologyKey": key, "labelSelector": {"matchLabels": labels}, **kw}


def deployment(
    affinity: dict[str, Any] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "m", "resources": {"requests": {"cpu": "1"}}}]}
    if affinity:
        spec["affinity"] = affinity
    return {
        "metadata": {"name": "llm", "namespace": "serve"},
        "spec": {"template": {"metadata": {"labels": labels or {"app": "llm"}}, "spec": spec}},
    }


def pod(
    name: str,
    node_name: str,
    labels: dict[str, str],
    ns: str = "serve",
    affinity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node_name, "containers": []}
    if affinity:
        spec["affinity"] = affinity
    return {"metadata": {"name": name, "labels": labels, "namespace": ns}, "spec": spec}


def anti(key: str) -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term(key, {"app": "llm"})]
        }
    }


def test_required_anti_affinity_per_host_leaves_the_extra_replica_pending() -> None:
    p = place(deployment(anti(HK)), NODES, 5)
    assert p.per_node == {"a1": 1, "a2": 1, "b1": 1, "c1": 1} and p.pending == 1
    assert p.reasons == [f"0/4 nodes are available: 4 {R_POD_ANTI_AFFINITY}."]


def test_required_anti_affinity_per_zone_strands_replacements_after_a_zone_loss() -> None:
    """The classic trap: one replica per zone, a zone goes, the replacement has nowhere to go."""
    zf = zone_failure(deployment(anti(ZK)), NODES, 3, "a")
    assert zf.lost == 1 and zf.replaced == 0 and zf.stranded == 1


def test_required_affinity_follows_the_matching_pod_or_places_the_first_of_a_group() -> None:
    near_cache = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term(ZK, {"app": "cache"})]
        }
    }
    name, why = schedule_pod(
        deployment(near_cache), NODES, [pod("cache-0", "b1", {"app": "cache"})]
    )
    assert (name, why) == ("b1", "Scheduled")
    name, why = schedule_pod(deployment(near_cache), NODES, [])
    assert (
        name is None and R_POD_AFFINITY in why
    )  # no cache anywhere, and llm is not a cache itself
    with_self = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term(ZK, {"app": "llm"})]
        }
    }
    first = place(deployment(with_self), NODES, 3)
    assert (
        first.pending == 0 and len(first.per_zone) == 1
    )  # the group co-locates with its first pod


def test_an_existing_pods_anti_affinity_keeps_the_incoming_pod_away() -> None:
    loner = pod("loner", "a1", {"app": "loner"}, affinity=anti(HK))
    name, why = schedule_pod(deployment(), [node("a1", "a")], [loner])
    assert name is None and R_EXISTING_ANTI_AFFINITY in why
    other_ns = pod(
        "loner",
        "a1",
        {"app": "loner"},
        ns="elsewhere",
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [term(HK, {"app": "llm"})]
            }
        },
    )
    # a term without `namespaces` covers its own pod's namespace only
    assert schedule_pod(deployment(), [node("a1", "a")], [other_ns]) == ("a1", "Scheduled")
    all_ns = pod(
        "loner",
        "a1",
        {"app": "loner"},
        ns="elsewhere",
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    term(HK, {"app": "llm"}, namespaceSelector={})
                ]
            }
        },
    )
    assert schedule_pod(deployment(), [node("a1", "a")], [all_ns])[0] is None


def test_preferred_affinity_outweighs_an_empty_node() -> None:
    likes_cache = {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term(HK, {"app": "cache"})}
            ]
        }
    }
    existing = [pod("cache-0", "b1", {"app": "cache"})]
    assert schedule_pod(deployment(likes_cache), NODES, existing) == ("b1", "Scheduled")
    avoids = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term(ZK, {"app": "llm"})}
            ]
        }
    }
    p = place(deployment(avoids), NODES, 3)
    assert p.per_zone == {"a": 1, "b": 1, "c": 1}
