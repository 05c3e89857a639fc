"""Node faults: a zone lost (NotReady + unreachable taints, its pods killed), drained, restored.

Deviation, on purpose: pods on a node made unreachable are deleted after `eviction_delay_s`
(default 0, as if tolerationSeconds had expired), not after the 300 s default toleration; the
replacements then schedule as the scheduler would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers.disruption_controller import DisruptionController
from harness.backends.observe import FaultKind, FaultRecord, Taint
from harness.errors import InputError

UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
DRAIN_RETRY_S = 5.0  # kubectl drain's wait between refused evictions


class NodeLifecycleController:
    def __init__(
        self,
        state: ClusterState,
        zones: list[str],
        disruption: DisruptionController,
        kill_pod: Callable[[str], None],
        eviction_delay_s: float = 0.0,
    ) -> None:
        self.state = state
        self.zones = zones
        self.disruption = disruption
        self.kill_pod = kill_pod  # SIGKILL at once: the node is gone
        self.eviction_delay_s = eviction_delay_s

    def check_zone(self, zone: str) -> None:
        if zone not in self.zones:
            raise InputError(f"unknown zone {zone!r}", field="zone", fix=f"use one of {self.zones}")

    def _zone_pods(self, zone: str) -> list[str]:
        with self.state.lock:
            return [p.name for p in self.state.active_pods() if p.zone == zone]

    def zone_outage(self, zone: str) -> FaultRecord:
        self.check_zone(zone)
        s = self.state
        started = time.time()
        with s.lock:
            for n in s.zone_nodes(zone):
                n.ready = False
                n.taints = [t for t in n.taints if t.key != UNREACHABLE] + [
                    Taint(key=UNREACHABLE, effect="NoSchedule"),
                    Taint(key=UNREACHABLE, effect="NoExecute"),
                ]
            victims = [p for p in s.active_pods() if p.zone == zone]
        for p in victims:
            s.events.record(
                "Pod",
                p.name,
                "NodeNotReady",
                f"Node {p.node_name} is unreachable",
                type_="Warning",
                source="node-controller",
            )
            self.kill_pod(p.name)
        if self.eviction_delay_s > 0:
            time.sleep(self.eviction_delay_s)
        for p in victims:
            s.events.record(
                "Pod",
                p.name,
                "TaintManagerEviction",
                "Marking for deletion Pod",
                source="taint-eviction-controller",
            )
        s.wake.set()
        return FaultRecord(
            kind=FaultKind.ZONE_OUTAGE,
            target=zone,
            started_at=started,
            ended_at=time.time(),
            affected=[p.name for p in victims] + [n.name for n in s.zone_nodes(zone)],
            landed=bool(victims),
            detail=f"{len(victims)} pods SIGKILLed; nodes tainted {UNREACHABLE}",
        )

    def restore_zone(self, zone: str) -> FaultRecord:
        self.check_zone(zone)
        s = self.state
        started = time.time()
        with s.lock:
            for n in s.zone_nodes(zone):
                n.ready, n.unschedulable = True, False
                n.taints = [t for t in n.taints if t.key not in (UNREACHABLE, UNSCHEDULABLE)]
        s.wake.set()
        return FaultRecord(
            kind=FaultKind.RESTORE,
            target=zone,
            started_at=started,
            ended_at=time.time(),
            landed=True,
            affected=[n.name for n in s.zone_nodes(zone)],
        )

    def drain_zone(self, zone: str, timeout_s: float = 60.0) -> FaultRecord:
        """kubectl drain of the zone's nodes: cordon, then evictions through the PDB, a refused
        one (429) retried every 5 s until `timeout_s`."""
        self.check_zone(zone)
        s = self.state
        started = time.time()
        with s.lock:
            for n in s.zone_nodes(zone):
                n.unschedulable = True
                n.taints.append(Taint(key=UNSCHEDULABLE, effect="NoSchedule"))
        deadline = time.monotonic() + timeout_s
        evicted: list[str] = []
        refused = 0
        while True:
            todo = self._zone_pods(zone)
            if not todo:
                break
            for name in todo:
                if self.disruption.evict(name) == 200:
                    evicted.append(name)
                else:
                    refused += 1
            if time.monotonic() > deadline:
                break
            time.sleep(min(DRAIN_RETRY_S, max(0.0, deadline - time.monotonic())))
        left = self._zone_pods(zone)
        detail = f"evicted {len(evicted)}; " + (
            f"blocked by the PodDisruptionBudget (429) for {left}" if left else "drain complete"
        )
        return FaultRecord(
            kind=FaultKind.DRAIN,
            target=zone,
            started_at=started,
            ended_at=time.time(),
            affected=evicted,
            landed=not left,
            detail=detail,
            evictions_blocked=left,
            eviction_429s=refused,
        )
