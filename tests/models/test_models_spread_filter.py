"""Upstream pkg/scheduler/framework/plugins/podtopologyspread/filtering_test.go cases
(TestSingleConstraint, TestMultipleConstraints) run against `spread_filter`, the plugin alone.

Facts (nodes, pods, expected status per node) are upstream's; the code is this project's. As in
upstream's unit tests only PodTopologySpread filters: a node another plugin would reject (node
affinity, taints) can still "fit" here. Status codes: Success -> None, Unschedulable ->
R_SPREAD, UnschedulableAndUnresolvable -> R_SPREAD_LABEL.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from harness.models.scheduler.topology_spread import R_SPREAD, R_SPREAD_LABEL, spread_filter

S, U, UU = None, R_SPREAD, R_SPREAD_LABEL
FOO = {"matchExpressions": [{"key": "foo", "operator": "Exists"}]}  # MakeLabelSelector().Exists
BAR = {"matchExpressions": [{"key": "bar", "operator": "Exists"}]}
TAINTS = [{"key": "node.kubernetes.io/unschedulable", "value": "", "effect": "NoSchedule"}]
_names = itertools.count()


def node(name, taints=None, **labels):
    return {"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints or []}}


def zn(short, zone, taints=None, **extra):
    """node-<short> in a zone, labelled zone=<zone> and node=node-<short>."""
    return node(f"node-{short}", taints, zone=zone, node=f"node-{short}", **extra)


def nn(short, taints=None, **extra):
    """node-<short> labelled node=node-<short> only."""
    return node(f"node-{short}", taints, node=f"node-{short}", **extra)


NODES4 = [zn("a", "zone1"), zn("b", "zone1"), zn("x", "zone2"), zn("y", "zone2")]
FOO_NODES = [nn("a", foo=""), nn("b", foo=""), nn("x", foo=""), nn("y")]
FOO_NODES_TAINTED_Y = [*FOO_NODES[:3], nn("y", TAINTS)]


def c(max_skew, key, selector, min_domains=None, affinity=None, taints=None):
    """SpreadConstraint(maxSkew, key, DoNotSchedule, selector, minDomains, affinity, taints)."""
    out = {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule"}
    if selector is not None:
        out["labelSelector"] = selector
    for k, v in (
        ("minDomains", min_domains),
        ("nodeAffinityPolicy", affinity),
        ("nodeTaintsPolicy", taints),
    ):
        if v is not None:
            out[k] = v
    return out


def pod(labels, *constraints, node_selector=None, affinity=None):
    """The incoming pod; labels "foo" / "foo,bar"; affinity (key, operator, values)."""
    spec: dict[str, Any] = {
        "containers": [{"name": "c"}],
        "topologySpreadConstraints": list(constraints),
    }
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    if affinity is not None:
        key, op, values = affinity
        term = {"matchExpressions": [{"key": key, "operator": op, "values": values}]}
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        }
    meta_labels = dict.fromkeys(labels.split(","), "")
    return {"metadata": {"name": "p", "labels": meta_labels}, "spec": spec}


def at(short, labels="foo", ns=None, terminating=False):
    """An existing pod on node-<short>."""
    meta = {"name": f"p-{next(_names)}", "labels": dict.fromkeys(labels.split(","), "")}
    if ns is not None:
        meta["namespace"] = ns
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": f"node-{short}"}}


def foo_on(*shorts):
    return [at(s) for s in shorts]


def case(name, incoming, nodes, existing, want):
    return pytest.param(incoming, nodes, existing, want, id=name)


SPREAD_3_3 = foo_on("a", "a", "b", "y", "y", "y")
ON_A_B_Y = foo_on("a", "b", "y")
THREE = [nn("a"), nn("b"), nn("c")]
ZONE_NODE = (c(1, "zone", FOO), c(1, "node", FOO))
FOO_BAR_ZONE_NODE = pod("foo,bar", c(1, "zone", FOO), c(1, "node", BAR))
BAR_THEN_FOO_ZONE = pod("foo,bar", c(1, "zone", BAR), c(1, "zone", FOO))
FOO_ZONES4 = [
    zn("a", "zone1", foo=""),
    zn("b", "zone1"),
    zn("x", "zone2", foo=""),
    zn("y", "zone2", TAINTS, foo=""),
]

SINGLE = [
    case("no existing pods", pod("foo", c(1, "zone", FOO)), NODES4, [], [S, S, S, S]),
    case(
        "no existing pods, incoming pod doesn't match itself",
        pod("foo", c(1, "zone", BAR)),
        NODES4,
        [],
        [S, S, S, S],
    ),
    case(
        "existing pods in a different namespace do not count",
        pod("foo", c(1, "zone", FOO)),
        NODES4,
        [at("a", ns="ns1"), at("a", ns="ns2"), at("x"), at("y")],
        [S, S, U, U],
    ),
    case(
        "existing pods do not match null selector",
        pod("foo", c(1, "zone", None)),
        NODES4,
        foo_on("x", "y"),
        [S, S, S, S],
    ),
    case(
        "pods spread across zones as 3/3, all nodes fit",
        pod("foo", c(1, "zone", FOO)),
        NODES4,
        SPREAD_3_3,
        [S, S, S, S],
    ),
    case(
        "pods spread across zones as 1/2 due to absence of label 'zone' on node-b",
        pod("foo", c(1, "zone", FOO)),
        [
            zn("a", "zone1"),
            node("node-b", zon="zone1", node="node-b"),
            zn("x", "zone2"),
            zn("y", "zone2"),
        ],
        foo_on("a", "b", "x", "y"),
        [S, UU, U, U],
    ),
    case(
        "pod cannot be scheduled as all nodes don't have label 'rack'",
        pod("foo", c(1, "rack", FOO)),
        [zn("a", "zone1"), zn("x", "zone2")],
        [],
        [UU, UU],
    ),
    case(
        "pods spread across nodes as 2/1/0/3, only node-x fits",
        pod("foo", c(1, "node", FOO)),
        NODES4,
        SPREAD_3_3,
        [U, U, S, U],
    ),
    case(
        "pods spread across nodes as 2/1/0/3, maxSkew is 2, node-b and node-x fit",
        pod("foo", c(2, "node", FOO)),
        NODES4,
        SPREAD_3_3,
        [U, S, S, U],
    ),
    case(
        "pods spread across nodes as 2/1/0/3, but pod doesn't match itself",
        pod("bar", c(1, "node", FOO)),
        NODES4,
        SPREAD_3_3,
        [U, S, S, U],
    ),
    case(
        "incoming pod has nodeAffinity, pods spread as 2/~1~/~0~/3, hence node-a fits",
        pod("foo", c(1, "node", FOO), affinity=("node", "In", ["node-a", "node-y"])),
        NODES4,
        SPREAD_3_3,
        [S, S, S, U],
    ),
    case(
        "terminating Pods should be excluded",
        pod("foo", c(1, "node", FOO)),
        [nn("a"), nn("b")],
        [at("a", terminating=True), at("b")],
        [S, U],
    ),
    case(
        "incoming pod has nodeAffinity, pods spread as 0/~2~/0/1, hence node-a fits",
        pod("foo", c(1, "zone", FOO), affinity=("node", "NotIn", ["node-b"])),
        NODES4,
        foo_on("b", "b", "y"),
        [S, S, U, U],
    ),
    case(
        "pods spread across nodes as 2/2/1, maxSkew is 2, and the number of domains < "
        "minDomains, then the third node fits",
        pod("foo", c(2, "node", FOO, min_domains=4)),
        THREE,
        foo_on("a", "a", "b", "b", "c"),
        [U, U, S],
    ),
    case(
        "pods spread across nodes as 2/2/1, maxSkew is 2, and the number of domains > "
        "minDomains, then the all nodes fit",
        pod("foo", c(2, "node", FOO, min_domains=2)),
        THREE,
        foo_on("a", "a", "b", "b", "c"),
        [S, S, S],
    ),
    case(
        "pods spread across zone as 2/1, maxSkew is 2 and the number of domains < "
        "minDomains, then the third and fourth nodes fit",
        pod("foo", c(2, "zone", FOO, min_domains=3)),
        NODES4,
        ON_A_B_Y,
        [U, U, S, S],
    ),
    case(
        "pods spread across zone as 2/1, maxSkew is 2 and the number of domains > "
        "minDomains, then the all nodes fit",
        pod("foo", c(2, "zone", FOO, min_domains=1)),
        NODES4,
        ON_A_B_Y,
        [S, S, S, S],
    ),
    case(
        "NodeAffinityPolicy honored with labelSelectors",
        pod("foo", c(1, "node", FOO), node_selector={"foo": ""}),
        FOO_NODES,
        ON_A_B_Y,
        [U, U, S, S],
    ),
    case(
        "NodeAffinityPolicy ignored with labelSelectors",
        pod("foo", c(1, "node", FOO, affinity="Ignore"), node_selector={"foo": ""}),
        FOO_NODES,
        ON_A_B_Y,
        [U, U, S, U],
    ),
    case(
        "NodeAffinityPolicy honored with nodeAffinity",
        pod("foo", c(1, "node", FOO), affinity=("foo", "In", [""])),
        FOO_NODES,
        ON_A_B_Y,
        [U, U, S, S],
    ),
    case(
        "NodeAffinityPolicy ignored with nodeAffinity",
        pod("foo", c(1, "node", FOO, affinity="Ignore"), affinity=("foo", "In", [""])),
        FOO_NODES,
        ON_A_B_Y,
        [U, U, S, U],
    ),
    case(
        "NodeTaintsPolicy honored",
        pod("foo", c(1, "node", FOO, taints="Honor")),
        FOO_NODES_TAINTED_Y,
        ON_A_B_Y,
        [U, U, S, S],
    ),
    case(
        "NodeTaintsPolicy ignored",
        pod("foo", c(1, "node", FOO)),
        FOO_NODES_TAINTED_Y,
        ON_A_B_Y,
        [U, U, S, U],
    ),
]

MULTIPLE = [
    case(
        "two Constraints on zone and node, spreads = [3/3, 2/1/0/3]",
        pod("foo", *ZONE_NODE),
        NODES4,
        SPREAD_3_3,
        [U, U, S, U],
    ),
    case(
        "two Constraints on zone and node, spreads = [3/4, 2/1/0/4]",
        pod("foo", *ZONE_NODE),
        NODES4,
        [*SPREAD_3_3, at("y")],
        [U, U, U, U],
    ),
    case(
        "Constraints hold different labelSelectors, spreads = [1/0, 1/0/0/1]",
        FOO_BAR_ZONE_NODE,
        NODES4,
        [at("a"), at("y", "bar")],
        [U, U, S, U],
    ),
    case(
        "Constraints hold different labelSelectors, spreads = [1/0, 0/0/1/1]",
        FOO_BAR_ZONE_NODE,
        NODES4,
        [at("a"), at("x", "bar"), at("y", "bar")],
        [U, U, U, U],
    ),
    case(
        "Constraints hold different labelSelectors, spreads = [2/3, 1/0/0/1]",
        FOO_BAR_ZONE_NODE,
        NODES4,
        [at("a"), at("a", "foo,bar"), at("y"), at("y", "foo,bar"), at("y")],
        [U, S, U, U],
    ),
    case(
        "Constraints hold different labelSelectors but pod doesn't match itself on 'zone' "
        "constraint",
        pod("bar", c(1, "zone", FOO), c(1, "node", BAR)),
        NODES4,
        [at("a"), at("x", "bar"), at("y", "bar")],
        [S, S, U, U],
    ),
    case(
        "two Constraints on zone and node, absence of label 'node' on node-x, spreads = [1/1, "
        "1/0/0/1]",
        pod("foo", *ZONE_NODE),
        [zn("a", "zone1"), zn("b", "zone1"), node("node-x", zone="zone2"), zn("y", "zone2")],
        foo_on("a", "y"),
        [U, S, UU, U],
    ),
    case(
        "two node inclusion Constraints, zone: honor/ignore, node: ignore/ignore",
        pod(
            "foo",
            c(1, "zone", FOO),
            c(1, "node", FOO, affinity="Ignore"),
            node_selector={"foo": ""},
        ),
        [
            zn("a", "zone1", foo=""),
            zn("b", "zone1", foo=""),
            zn("x", "zone2", foo=""),
            zn("y", "zone2"),
        ],
        foo_on("a", "b", "y"),
        [U, U, S, U],
    ),
    case(
        "two node inclusion Constraints, zone: honor/honor, node: honor/ignore",
        pod("foo", c(1, "zone", FOO, taints="Honor"), c(1, "node", FOO)),
        [
            zn("a", "zone1", foo=""),
            zn("b", "zone1", foo=""),
            zn("x", "zone2", foo=""),
            zn("y", "zone2", TAINTS),
        ],
        foo_on("a", "b", "y"),
        [U, U, S, U],
    ),
    case(
        "two node inclusion Constraints, zone: honor/ignore, node: honor/ignore",
        pod("foo", *ZONE_NODE, node_selector={"foo": ""}),
        FOO_ZONES4,
        foo_on("a", "b", "y"),
        [U, S, S, U],
    ),
    case(
        "two node inclusion Constraints, zone: honor/honor, node: ignore/ignore",
        pod(
            "foo",
            c(1, "zone", FOO, taints="Honor"),
            c(1, "node", FOO, affinity="Ignore"),
            node_selector={"foo": ""},
        ),
        FOO_ZONES4,
        foo_on("a", "b", "y"),
        [U, U, S, U],
    ),
    case(
        "two Constraints on zone, spreads = [3/3, 2/1]",
        BAR_THEN_FOO_ZONE,
        NODES4,
        [at("a", "foo,bar"), at("a"), at("b", "foo,bar"), at("y"), at("y", "foo,bar"), at("y")],
        [U, U, S, S],
    ),
    case(
        "two Constraints on zone, spreads = [3/4, 2/1]",
        BAR_THEN_FOO_ZONE,
        NODES4,
        [
            at("a", "foo,bar"),
            at("a"),
            at("b", "foo,bar"),
            at("y"),
            at("y", "foo,bar"),
            at("y"),
            at("y"),
        ],
        [U, U, U, U],
    ),
]


@pytest.mark.parametrize(("incoming", "nodes", "existing", "want"), SINGLE + MULTIPLE)
def test_upstream_topology_spread_filter(incoming, nodes, existing, want):
    got = spread_filter(incoming, nodes, existing)
    assert [got[n["metadata"]["name"]] for n in nodes] == want


def test_empty_label_selector_counts_no_pod():
    """common.go countPodsMatchSelector: `if selector.Empty() { return 0 }`. `labelSelector: {}`
    selects every pod, yet no existing pod is counted (the incoming pod still matches itself),
    so such a constraint never blocks a node."""
    got = spread_filter(pod("foo", c(1, "zone", {})), NODES4, foo_on(*"aaaaa"))
    assert list(got.values()) == [S, S, S, S]
    # a nil selector matches nothing (labels.Nothing()): never blocks either
    got = spread_filter(pod("foo", c(1, "zone", None)), NODES4, foo_on(*"aaaaa"))
    assert list(got.values()) == [S, S, S, S]
    # while one that selects them counts them
    got = spread_filter(pod("foo", c(1, "zone", FOO)), NODES4, foo_on(*"aaaaa"))
    assert list(got.values()) == [U, U, S, S]
