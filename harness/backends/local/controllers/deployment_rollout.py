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

* A scaling event (spec.replicas changed while sets were sized for another count) is handled
  first, by proportional scaling across the active sets (sync.go scale()), not by the strategy.

Sizes are ReplicaSet `spec.replicas`; which pods go is the ReplicaSet controller's choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.backends.local.podspec.rollout_strategy import RECREATE, ROLLING_UPDATE


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


def scale_down_old(
    s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState]
) -> dict[str, int]:
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


def recreate_step(
    s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState], old_pods_running: bool
) -> dict[str, int]:
    """One Recreate sync: old sets to 0, then (no old pod left running) the new set to replicas."""
    active_old = {o.name: 0 for o in olds if o.replicas > 0}
    if active_old:
        return active_old
    if old_pods_running or new.replicas == s.replicas:
        return {}
    return {new.name: s.replicas}


def is_scaling_event(sizes: dict[str, int], desired: dict[str, int], spec_replicas: int) -> bool:
    """isScalingEvent: an active ReplicaSet was sized for another spec.replicas (its
    desired-replicas annotation differs)."""
    return any(
        n > 0 and desired.get(name, spec_replicas) != spec_replicas for name, n in sizes.items()
    )


def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def scale(
    s: Strategy,
    new: ReplicaSetState,
    olds: list[ReplicaSetState],
    max_before: dict[str, int],
    status_replicas: int,
    new_saturated: bool,
) -> dict[str, int]:
    """The controller's scale() for a scaling event (sync.go): one active set (or none) takes
    spec.replicas; a saturated new set means the old ones go to 0; otherwise, for RollingUpdate,
    the sets grow or shrink in proportion to their sizes, up to `replicas + maxSurge` in all,
    the leftover going to the first set in order (largest first; newer first when scaling up,
    older first when scaling down). `max_before`: each set's max-replicas annotation (the
    Deployment's replicas + maxSurge when it was last sized)."""
    all_sets = [new, *olds]
    active = [r for r in all_sets if r.replicas > 0]
    if len(active) <= 1:
        target = active[0] if active else new
        return {} if target.replicas == s.replicas else {target.name: s.replicas}
    if new_saturated:
        return {o.name: 0 for o in olds if o.replicas > 0}
    if s.type != ROLLING_UPDATE:
        return {}
    allowed = s.replicas + s.max_surge if s.replicas > 0 else 0
    to_add = allowed - sum(r.replicas for r in active)
    if to_add == 0:
        return {}
    newer_first = to_add > 0
    ordered = sorted(
        active, key=lambda r: (-r.replicas, -r.created if newer_first else r.created, r.name)
    )
    sizes: dict[str, int] = {}
    added = 0
    for r in ordered:
        proportion = 0
        if added != to_add:
            if s.replicas == 0:
                fraction = -r.replicas
            else:
                before = max_before.get(r.name) or status_replicas
                fraction = (
                    0
                    if before == 0
                    else _round_half_away(r.replicas * allowed / before) - r.replicas
                )
            proportion = (
                min(fraction, to_add - added) if to_add > 0 else max(fraction, to_add - added)
            )
        sizes[r.name] = r.replicas + proportion
        added += proportion
    first = ordered[0].name
    sizes[first] = max(0, sizes[first] + to_add - added)
    return {
        name: n
        for name, n in sizes.items()
        if n != next(r.replicas for r in active if r.name == name)
    }


def plan(
    s: Strategy, new: ReplicaSetState, olds: list[ReplicaSetState], old_pods_running: bool
) -> dict[str, int]:
    """The ReplicaSet size changes of one Deployment sync."""
    if s.type == RECREATE:
        return recreate_step(s, new, olds, old_pods_running)
    return rolling_step(s, new, olds)
