"""The Deployment controller's rollout arithmetic, pure: ReplicaSet sizes and availability in,
new ReplicaSet sizes out.

Semantics of pkg/controller/deployment (rolling.go, recreate.go, util/deployment_util.go):

* RollingUpdate, one step per sync: first the new ReplicaSet -- scaled down at once if it is
  above `replicas`, else up toward `replicas` while the sum of all ReplicaSet sizes stays within
  `replicas + maxSurge` (terminating pods are no longer counted). Only when the new set did not
  change, the old sets are scaled down: at most `allPods - minAvailable - newUnavailable`, first
  the unavailable pods of the old sets (oldest set first), then available ones while the
  available count stays >= `replicas - maxUnavailable`.
* Recreate: every old set to 0; nothing more until no old pod is running (terminating pods
  included); then the new set to `replicas`.

Sizes are ReplicaSet `spec.replicas`; which pods go is the ReplicaSet controller's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"


@dataclass(frozen=True)
class ReplicaSetState:
    """One ReplicaSet (the pods of one pod-template-hash)."""

    name: str
    replicas: int  # spec.replicas: the pods it keeps
    available: int  # its non-terminating pods Ready for >= minReadySeconds
    created: float = 0.0  # creation time: old sets are scaled down oldest first


@dataclass(frozen=True)
class Strategy:
    """The Deployment's spec.strategy with fenceposts resolved against spec.replicas."""

    type: str  # RollingUpdate | Recreate
    replicas: int
    max_surge: int
    max_unavailable: int


def is_available(ready: bool, ready_since: float | None, min_ready_s: float, now: float) -> bool:
    """IsPodAvailable: Ready, and Ready for at least minReadySeconds."""
    if not ready:
        return False
    if min_ready_s <= 0:
        return True
    return ready_since is not None and ready_since + min_ready_s < now


def max_unavailable(s: Strategy) -> int:
    """MaxUnavailable: 0 for Recreate or 0 replicas; never more than replicas."""
    if s.type != ROLLING_UPDATE or s.replicas == 0:
        return 0
    return min(s.max_unavailable, s.replicas)


def new_replicas_rolling(s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState]) -> int:
    """NewRSNewReplicas for RollingUpdate: the new set's size after one scale-up step."""
    current = new.replicas + sum(o.replicas for o in olds)
    max_total = s.replicas + s.max_surge
    if current >= max_total:
        return new.replicas
    return new.replicas + max(0, min(max_total - current, s.replicas - new.replicas))


def scale_down_old(s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState]) -> dict[str, int]:
    """reconcileOldReplicaSets: new sizes of the old sets that shrink (unhealthy pods first)."""
    old_count = sum(o.replicas for o in olds)
    if old_count == 0:
        return {}
    min_available = s.replicas - max_unavailable(s)
    new_unavailable = new.replicas - new.available
    max_scaled_down = old_count + new.replicas - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    ordered = sorted(olds, key=lambda o: (o.created, o.name))
    sizes = {o.name: o.replicas for o in olds}
    cleaned = 0
    for o in ordered:  # cleanupUnhealthyReplicas
        unhealthy = sizes[o.name] - o.available
        if cleaned >= max_scaled_down:
            break
        if sizes[o.name] == 0 or unhealthy <= 0:
            continue
        n = min(max_scaled_down - cleaned, unhealthy)
        sizes[o.name] -= n
        cleaned += n
    available = new.available + sum(o.available for o in olds)
    budget = available - min_available
    scaled = 0
    for o in ordered:  # scaleDownOldReplicaSetsForRollingUpdate
        if scaled >= budget:
            break
        n = min(sizes[o.name], budget - scaled)
        sizes[o.name] -= n
        scaled += n
    return {o.name: sizes[o.name] for o in olds if sizes[o.name] != o.replicas}


def rolling_step(s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState]) -> dict[str, int]:
    """One RollingUpdate sync: {ReplicaSet name: new size} for the sets that change."""
    if new.replicas > s.replicas:
        return {new.name: s.replicas}
    if new.replicas < s.replicas:
        target = new_replicas_rolling(s, new, olds)
        if target != new.replicas:
            return {new.name: target}
    return scale_down_old(s, new, olds)


def recreate_step(s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState],
                  old_pods_running: bool) -> dict[str, int]:
    """One Recreate sync: old sets to 0, then (no old pod left running) the new set to replicas."""
    active_old = {o.name: 0 for o in olds if o.replicas > 0}
    if active_old:
        return active_old
    if old_pods_running or new.replicas == s.replicas:
        return {}
    return {new.name: s.replicas}


def plan(s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState], old_pods_running: bool) -> dict[str, int]:
    """The ReplicaSet size changes of one Deployment sync."""
    if s.type == RECREATE:
        return recreate_step(s, new, olds, old_pods_running)
    return rolling_step(s, new, olds)

