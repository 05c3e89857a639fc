"""PodTopologySpread filter/score semantics (filtering.go / scoring.go) and zone failure."""

from __future__ import annotations

import pytest

from harness.models._k8s import ModelInputError
from harness.models.scheduler import place, schedule_pod, zone_failure

ZK = "topology.kubernetes.io/zone"


def node(name, zone, cpu="8", gpu=None, taints=None, unschedulable=False, extra_labels=None):
    labels = {"kubernetes.io/hostname": name, **(extra_labels or {})}
    if zone is not None:
        labels[ZK] = zone
    alloc = {"cpu": cpu, "memory": "32Gi", "pods": "110"}
    if gpu is not None:
        alloc["nvidia.com/gpu"] = str(gpu)
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": alloc},
    }


def deployment(constraints=None, cpu="1", gpu=None, selector_labels=None):
    res = {"requests": {"cpu": cpu}}
    if gpu:
        res["limits"] = {"nvidia.com/gpu": str(gpu)}
    spec = {"containers": [{"name": "m", "resources": res}]}
    if constraints is not None:
        spec["topologySpreadConstraints"] = constraints
    return {
        "metadata": {"name": "llm", "namespace": "serve"},
        "spec": {
            "template": {"metadata": {"labels": selector_labels or {"app": "llm"}}, "spec": spec}
        },
    }


def zone_spread(max_skew=1, **kw):
    return [
        {
            "maxSkew": max_skew,
            "topologyKey": ZK,
            "whenUnsatisfiable": kw.pop("when", "DoNotSchedule"),
            "labelSelector": {"matchLabels": {"app": "llm"}},
            **kw,
        }
    ]


def existing(node_name, labels=None, ns="serve", deleting=False):
    meta = {"name": f"x-{node_name}", "labels": labels or {"app": "llm"}, "namespace": ns}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node_name, "containers": []}}


NODES = [node("a1", "a"), node("a2", "a"), node("b1", "b"), node("c1", "c")]


def test_docs_example_two_two_one_goes_to_third_zone():
    pods = [existing("a1"), existing("a2"), existing("b1"), existing("b1"), existing("c1")]
    pods = [dict(p, metadata=dict(p["metadata"], name=f"e{i}")) for i, p in enumerate(pods)]
    name, why = schedule_pod(deployment(zone_spread()), NODES, pods)
    assert (name, why) == ("c1", "Scheduled")


def test_even_placement_and_pending_when_skew_blocks():
    p = place(deployment(zone_spread()), NODES, 6)
    assert p.per_zone == {"a": 2, "b": 2, "c": 2} and p.pending == 0
    # one zone without capacity: maxSkew 1 caps the others at min+1
    nodes = [node("a1", "a"), node("b1", "b"), node("c1", "c", cpu="1")]
    p = place(deployment(zone_spread()), nodes, 6)
    assert p.per_zone == {"a": 2, "b": 2, "c": 1} and p.pending == 1
    assert any("didn't match pod topology spread constraints" in r for r in p.reasons)


def test_terminating_and_other_namespace_pods_are_not_counted():
    pods = [existing("a1", deleting=True), existing("a2", ns="other")]
    pods = [dict(p, metadata=dict(p["metadata"], name=f"e{i}")) for i, p in enumerate(pods)]
    p = place(deployment(zone_spread()), NODES, 3, existing=pods)
    assert p.per_zone == {"a": 1, "b": 1, "c": 1}


def test_min_domains_forces_global_min_zero():
    nodes = [node("a1", "a"), node("b1", "b")]
    p = place(deployment(zone_spread(minDomains=3)), nodes, 4)
    assert p.per_zone == {"a": 1, "b": 1} and p.pending == 2


def test_nodes_without_the_key_are_unschedulable_for_hard_spread():
    nodes = [node("a1", "a"), node("nolabel", None)]
    p = place(deployment(zone_spread(max_skew=5)), nodes, 3)
    assert p.per_node == {"a1": 3}


def test_node_affinity_policy_honor_vs_ignore():
    nodes = [
        node("a1", "a", extra_labels={"gpu": "yes"}),
        node("b1", "b", extra_labels={"gpu": "yes"}),
        node("c1", "c"),
    ]
    dep = deployment(zone_spread())
    dep["spec"]["template"]["spec"]["nodeSelector"] = {"gpu": "yes"}
    assert place(dep, nodes, 4).per_zone == {"a": 2, "b": 2}  # Honor: zone c is not a domain
    dep["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["nodeAffinityPolicy"] = "Ignore"
    p = place(dep, nodes, 4)  # Ignore: empty zone c pins min at 0
    assert p.per_zone == {"a": 1, "b": 1} and p.pending == 2


def test_zone_failure_trap_with_default_node_taints_policy():
    nodes = [node(f"{z}{i}", z) for z in "abc" for i in range(2)]
    zf = zone_failure(deployment(zone_spread()), nodes, 6, "a")
    assert zf.before.per_zone == {"a": 2, "b": 2, "c": 2}
    assert (zf.lost, zf.replaced, zf.stranded) == (2, 0, 2)
    assert zf.after.pending == 2 and zf.after.per_zone == {"b": 2, "c": 2}
    assert zf.notes and "nodeTaintsPolicy: Honor" in zf.notes[0]
    zf = zone_failure(deployment(zone_spread(nodeTaintsPolicy="Honor")), nodes, 6, "a")
    assert (zf.lost, zf.replaced, zf.stranded) == (2, 2, 0) and zf.after.per_zone == {
        "b": 3,
        "c": 3,
    }


def test_schedule_anyway_never_blocks_and_prefers_fewer():
    nodes = [node("a1", "a"), node("b1", "b"), node("c1", "c", cpu="1")]
    p = place(deployment(zone_spread(when="ScheduleAnyway")), nodes, 7)
    assert p.pending == 0 and p.per_zone["c"] == 1 and abs(p.per_zone["a"] - p.per_zone["b"]) <= 1


def test_gpu_limits_and_taints_block():
    nodes = [
        node("g1", "a", gpu=1),
        node("g2", "b", gpu=1),
        node("g3", "c", gpu=1, taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]),
    ]
    p = place(deployment(zone_spread(), gpu=1), nodes, 3)
    assert p.per_zone == {"a": 1, "b": 1} and p.pending == 1
    assert "Insufficient nvidia.com/gpu" in p.reasons[0] and "untolerated taint" in p.reasons[0]
    dep = deployment(zone_spread(), gpu=1)
    dep["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    assert place(dep, nodes, 3).per_zone == {"a": 1, "b": 1, "c": 1}


def test_cordoned_node_is_unschedulable():
    nodes = [node("a1", "a", unschedulable=True), node("b1", "b")]
    name, _ = schedule_pod(deployment(), nodes, [])
    assert name == "b1"


def test_match_label_keys_only_counts_same_revision():
    # old-revision pods (different pod-template-hash) do not count for the new ReplicaSet
    c = zone_spread()
    c[0]["matchLabelKeys"] = ["pod-template-hash"]
    old = [
        existing("a1", labels={"app": "llm", "pod-template-hash": "old"}),
        existing("a2", labels={"app": "llm", "pod-template-hash": "old"}),
    ]
    old = [dict(p, metadata=dict(p["metadata"], name=f"o{i}")) for i, p in enumerate(old)]
    p = place(deployment(c), NODES, 3, existing=old)
    assert p.per_zone == {"a": 1, "b": 1, "c": 1}
    p = place(deployment(zone_spread()), NODES, 3, existing=old)  # without: zone a is "full"
    assert p.per_zone.get("a", 0) == 0 or p.pending > 0


def test_input_errors_name_the_field():
    with pytest.raises(ModelInputError) as e:
        place(deployment(zone_spread(max_skew=0)), NODES, 1)
    assert e.value.field == "spec.topologySpreadConstraints[0].maxSkew"
    with pytest.raises(ModelInputError) as e:
        zone_failure(deployment(zone_spread()), NODES, 2, "z")
    assert e.value.field == "failZone"
