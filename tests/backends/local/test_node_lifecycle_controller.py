"""Zone outage, restore and drain on simulated nodes.

Taints, kills, evictions and their FaultRecords.
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster_fakes import Deletions, add_pod, cluster

from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers.disruption_controller import DisruptionController
from harness.backends.local.controllers.node_lifecycle_controller import (
    UNREACHABLE,
    UNSCHEDULABLE,
    NodeLifecycleController,
)
from harness.backends.observe import FaultKind
from harness.errors import InputError

PDB = {
    "apiVersion": "policy/v1",
    "kind": "PodDisruptionBudget",
    "metadata": {"name": "standin"},
    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "standin"}}},
}


def setup(*extra: dict[str, Any]) -> tuple[ClusterState, NodeLifecycleController, list[str]]:
    s = cluster(2, *extra)
    add_pod(s, "a", node="local-zone-a-0", ready=True)
    add_pod(s, "b", node="local-zone-b-0", ready=True)
    killed: list[str] = []
    return (
        s,
        NodeLifecycleController(
            s, ["zone-a", "zone-b"], DisruptionController(s, Deletions(s)), killed.append
        ),
        killed,
    )


def test_zone_outage_taints_the_zone_and_kills_its_pods_then_restore_clears_it() -> None:
    s, ctl, killed = setup()
    rec = ctl.zone_outage("zone-b")
    assert rec.kind is FaultKind.ZONE_OUTAGE and rec.landed and killed == ["b"]
    assert rec.affected == ["b", "local-zone-b-0"]
    (node,) = s.zone_nodes("zone-b")
    assert not node.ready and {(t.key, t.effect) for t in node.taints} == {
        (UNREACHABLE, "NoSchedule"),
        (UNREACHABLE, "NoExecute"),
    }
    assert s.wake.is_set()
    back = ctl.restore_zone("zone-b")
    assert back.kind is FaultKind.RESTORE and back.affected == ["local-zone-b-0"]
    assert node.ready and not node.unschedulable and node.taints == []


def test_drain_records_the_evictions_a_budget_refused() -> None:
    s, ctl, _ = setup(PDB)
    rec = ctl.drain_zone("zone-b", timeout_s=0)
    assert rec.kind is FaultKind.DRAIN and not rec.landed
    assert rec.evictions_blocked == ["b"] and rec.eviction_429s == 1 and rec.affected == []
    (node,) = s.zone_nodes("zone-b")
    assert node.unschedulable and [t.key for t in node.taints] == [UNSCHEDULABLE]


def test_drain_without_a_budget_evicts_every_pod_of_the_zone() -> None:
    s, ctl, _ = setup()
    rec = ctl.drain_zone("zone-b", timeout_s=0)
    assert (
        rec.landed
        and rec.affected == ["b"]
        and rec.evictions_blocked == []
        and rec.eviction_429s == 0
    )
    assert rec.detail == "evicted 1; drain complete" and s.pods["a"].deletion is None


def test_an_unknown_zone_is_an_input_error() -> None:
    _, ctl, _ = setup()
    with pytest.raises(InputError):
        ctl.zone_outage("zone-z")
