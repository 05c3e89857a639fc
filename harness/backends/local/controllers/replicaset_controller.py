"""The ReplicaSet controller (pkg/controller/replicaset): each set keeps its size in pods.

Sizes count non-terminating pods. Scale-down picks unscheduled, then pending, then unready,
then the newest pods (getPodsToDelete's ranking, simplified to what local pods have).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.cluster.state import TEMPLATE_HASH, ClusterState

#: pod name, grace period (None: the pod's own)
DeletePod = Callable[[str, float | None], None]


def deletion_rank(p: LocalPod) -> tuple[bool, int, bool, float]:
    """Scale-down order, first deleted first: unscheduled < pending < running, not ready < ready,
    newest."""
    return (p.node_name is not None, 0 if p.phase == "Pending" else 1, p.ready, -p.creation)


class ReplicaSetController:
    def __init__(self, state: ClusterState, delete_pod: DeletePod) -> None:
        self.state = state
        self.delete_pod = delete_pod

    def diff(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Under the lock: the pods to create (their set's hash) and to delete ((hash, pod)) per
        set."""
        creates: list[str] = []
        deletes: list[tuple[str, str]] = []
        for h, rs in self.state.replicasets.items():
            active = [p for p in self.state.active_pods() if p.labels.get(TEMPLATE_HASH) == h]
            diff = rs.replicas - len(active)
            if diff > 0:
                creates += [h] * diff
            elif diff < 0:
                deletes += [(h, p.name) for p in sorted(active, key=deletion_rank)[:-diff]]
        return creates, deletes

    def apply(self, creates: list[str], deletes: list[tuple[str, str]]) -> None:
        for h in creates:
            self._create_pod(h)
        for h, name in deletes:
            self.state.events.record(
                "ReplicaSet",
                self.state.rs_name(h),
                "SuccessfulDelete",
                f"Deleted pod: {name}",
                source="replicaset-controller",
            )
            self.delete_pod(name, None)

    def sync(self) -> None:
        with self.state.lock:
            creates, deletes = self.diff()
        self.apply(creates, deletes)

    def _create_pod(self, h: str) -> None:
        s = self.state
        template = s.deployment.templates[h]
        name = f"{s.rs_name(h)}-{uuid.uuid4().hex[:5]}"
        labels = {**template.labels, TEMPLATE_HASH: h}
        pod = LocalPod(
            name=name, namespace=s.namespace, labels=labels, template=template, creation=time.time()
        )
        pod.set_condition("PodScheduled", "False", "Unschedulable", "waiting for the scheduler")
        with s.lock:
            s.pods[name] = pod
        s.events.record(
            "ReplicaSet",
            s.rs_name(h),
            "SuccessfulCreate",
            f"Created pod: {name}",
            source="replicaset-controller",
        )
