"""The scheduler controller.

Pending pods bound through the shared model, or left Pending with its words.
"""

from __future__ import annotations

import time

from cluster_fakes import add_pod, cluster

from harness.backends.local.cluster.ipam import LoopbackIPAM
from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers.scheduler_controller import SchedulerController

ALLOCATABLE = {"cpu": 4.0, "memory": 8e9}


def scheduler(s: ClusterState, started: list[LocalPod]) -> SchedulerController:
    return SchedulerController(s, ALLOCATABLE, lambda: "127.0.0.9", started.append)


def test_a_pending_pod_is_bound_given_an_ip_and_handed_to_the_kubelet() -> None:
    s = cluster(1)
    p = add_pod(s, "p", node=None)
    started: list[LocalPod] = []
    scheduler(s, started).schedule_pending()
    assert started == [p] and p.node_name in {n.name for n in s.nodes} and p.pod_ip == "127.0.0.9"
    assert p.zone in ("zone-a", "zone-b") and p.conditions["PodScheduled"].status == "True"
    assert any(e.reason == "Scheduled" and e.source == "default-scheduler" for e in s.events.list())


def test_no_feasible_node_leaves_the_pod_pending_with_the_schedulers_message() -> None:
    s = cluster(1)
    for n in s.nodes:
        n.unschedulable = True
    p = add_pod(s, "p", node=None)
    started: list[LocalPod] = []
    scheduler(s, started).schedule_pending()
    assert started == [] and p.node_name is None
    cond = p.conditions["PodScheduled"]
    assert (cond.status, cond.reason) == (
        "False",
        "Unschedulable",
    ) and "unschedulable" in cond.message
    (ev,) = [e for e in s.events.list() if e.reason == "FailedScheduling"]
    assert ev.message == cond.message and ev.type == "Warning"


def test_a_pod_deleted_while_it_waited_is_not_bound() -> None:
    s = cluster(1)
    p = add_pod(s, "p", node=None)
    p.deletion = time.time()
    started: list[LocalPod] = []
    scheduler(s, started).bind(p, s.nodes[0])
    assert started == [] and p.node_name is None


def test_pod_ips_skip_addresses_in_use() -> None:
    ipam = LoopbackIPAM()
    first = ipam.allocate(set(), [])
    assert first == f"{ipam.block}.2" and ipam.service_ip == f"{ipam.block}.1"
    assert ipam.allocate({f"{ipam.block}.3"}, []) == f"{ipam.block}.4"
