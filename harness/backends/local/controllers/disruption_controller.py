"""The Eviction API with policy/v1 PodDisruptionBudget checks: 200 evicts, 429 refuses.

As the API server's eviction handler: allowed disruptions are the healthy (Ready,
non-terminating) pods above the budget's desired count, taken against spec.replicas; an
unready pod may still go when `unhealthyPodEvictionPolicy: AlwaysAllow` or the budget is met.
"""

from __future__ import annotations

from typing import Any

from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers.replicaset_controller import DeletePod
from harness.errors import InputError
from harness.models.intstr import scaled_value

BUDGET_FIELDS = ("minAvailable", "maxUnavailable")


def check_budget(pdb: dict[str, Any] | None, source: str = "") -> None:
    """Refuse at deploy a budget the API server would not admit (an eviction could not read it)."""
    spec = (pdb or {}).get("spec") or {}
    for key in BUDGET_FIELDS:
        if key not in spec:
            continue
        try:
            scaled_value(spec[key], 1, True)
        except ValueError as err:
            raise InputError(
                f"PodDisruptionBudget {key} {spec[key]!r}: {err}",
                file=source or None,
                field=f"spec.{key}",
                fix="use an integer or a percentage like 50%",
            ) from None


class DisruptionController:
    def __init__(self, state: ClusterState, delete_pod: DeletePod) -> None:
        self.state = state
        self.delete_pod = delete_pod

    def evict(self, pod: str) -> int:
        s = self.state
        pdb = s.bundle.pdb if s.bundle else None
        with s.lock:
            p = s.pods.get(pod)
            if p is None or p.deletion is not None:
                return 200
            if pdb is not None:
                healthy = sum(1 for q in s.active_pods() if q.ready)
                expected = s.deployment.spec_replicas
                spec = pdb.get("spec") or {}
                if "minAvailable" in spec:
                    desired = scaled_value(spec["minAvailable"], expected, True)
                else:
                    desired = expected - scaled_value(spec.get("maxUnavailable", 0), expected, True)
                allowed = healthy - desired
                unhealthy_ok = not p.ready and (
                    spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow" or healthy >= desired
                )
                if allowed <= 0 and not unhealthy_ok:
                    s.events.record(
                        "Pod",
                        pod,
                        "EvictionBlocked",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        type_="Warning",
                        source="gauntlet",
                    )
                    return 429
        s.events.record("Pod", pod, "Evicted", "Evicted by drain", source="gauntlet")
        self.delete_pod(pod, None)
        return 200
