"""The ReplicaSet controller.

Missing pods created, surplus ones deleted in the controller's order.
"""

from __future__ import annotations

from cluster_fakes import HASH, Deletions, add_pod, cluster

from harness.backends.local.cluster.state import TEMPLATE_HASH, ReplicaSet
from harness.backends.local.controllers.replicaset_controller import ReplicaSetController


def test_missing_pods_are_created_unscheduled_with_the_template_hash() -> None:
    s = cluster(3)
    s.replicasets[HASH] = ReplicaSet(HASH, created=0.0, replicas=3)
    add_pod(s, "a")
    ctl = ReplicaSetController(s, Deletions(s))
    creates, deletes = ctl.diff()
    assert creates == [HASH, HASH] and deletes == []
    ctl.apply(creates, deletes)
    new = [p for p in s.pods.values() if p.name != "a"]
    assert len(new) == 2 and all(
        p.labels[TEMPLATE_HASH] == HASH and p.node_name is None for p in new
    )
    assert all(p.conditions["PodScheduled"].status == "False" for p in new)
    assert sum(e.count for e in s.events.list() if e.reason == "SuccessfulCreate") == 2


def test_scale_down_deletes_unscheduled_then_pending_then_unready_then_newest() -> None:
    s = cluster(1)
    s.replicasets[HASH] = ReplicaSet(HASH, created=0.0, replicas=1)
    add_pod(s, "ready-old", ready=True, created=1.0)
    add_pod(s, "ready-new", ready=True, created=2.0)
    add_pod(s, "unready", created=0.0)
    add_pod(s, "pending", phase="Pending", created=0.0)
    add_pod(s, "unscheduled", node=None, created=0.0)
    deletions = Deletions(s)
    ctl = ReplicaSetController(s, deletions)
    ctl.sync()
    assert [name for name, _ in deletions.calls] == [
        "unscheduled",
        "pending",
        "unready",
        "ready-new",
    ]
    assert all(grace is None for _, grace in deletions.calls)  # the pod's own grace period
    assert ctl.diff() == ([], [])  # terminating pods no longer count


def test_terminating_pods_are_replaced() -> None:
    s = cluster(1)
    s.replicasets[HASH] = ReplicaSet(HASH, created=0.0, replicas=1)
    add_pod(s, "old", ready=True).deletion = 1.0
    assert ReplicaSetController(s, Deletions(s)).diff() == ([HASH], [])
