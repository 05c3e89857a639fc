"""The Deployment's Available and Progressing conditions, pure.

Semantics of pkg/controller/deployment (sync.go calculateStatus / syncRolloutStatus,
progress.go, util/deployment_util.go):

* Available is True ("MinimumReplicasAvailable") while availableReplicas >= replicas -
  maxUnavailable, else False ("MinimumReplicasUnavailable").
* Progressing (only with a progress deadline): "NewReplicaSetCreated" when the controller
  creates the new ReplicaSet; then, unless the rollout is already complete, "NewReplicaSetAvailable"
  once every replica is updated and available, "ReplicaSetUpdated" (lastUpdateTime moves) on
  any progress (more updated, ready or available pods, fewer old ones), and False
  "ProgressDeadlineExceeded" once progressDeadlineSeconds pass after the last update without
  progress. A condition with the same status and reason is not rewritten; one with the same
  status keeps its lastTransitionTime.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.backends.observe import Condition

NEW_RS_CREATED = "NewReplicaSetCreated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class Counts:
    """The status counts progress is judged by (non-terminating pods)."""

    replicas: int
    updated: int
    ready: int
    available: int

    @property
    def old(self) -> int:
        return self.replicas - self.updated


def set_condition(current: Condition | None, new: Condition) -> Condition:
    """SetDeploymentCondition: same status and reason -> unchanged; same status -> keep the
    transition time."""
    if current is None:
        return new
    if current.status == new.status and current.reason == new.reason:
        return current
    if current.status == new.status:
        return new.model_copy(update={"lastTransitionTime": current.lastTransitionTime})
    return new


def _cond(type_: str, status: str, reason: str, message: str, now: float) -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        lastTransitionTime=now,
        lastUpdateTime=now,
    )


def available(
    current: Condition | None,
    spec_replicas: int,
    max_unavailable: int,
    available_replicas: int,
    now: float,
) -> Condition:
    if available_replicas >= spec_replicas - max_unavailable:
        new = _cond(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    else:
        new = _cond(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    return set_condition(current, new)


def new_replicaset_created(current: Condition | None, rs_name: str, now: float) -> Condition:
    return set_condition(
        current,
        _cond("Progressing", "True", NEW_RS_CREATED, f'Created new replica set "{rs_name}"', now),
    )


def progressing(
    current: Condition | None,
    rs_name: str,
    spec_replicas: int,
    before: Counts | None,
    after: Counts,
    deadline_s: float,
    now: float,
) -> Condition | None:
    """syncRolloutStatus's Progressing condition after one sync (None: no condition yet)."""
    complete_before = (
        current is not None
        and current.reason == NEW_RS_AVAILABLE
        and after.replicas == after.updated
    )
    if complete_before:
        return current
    if (
        after.updated == spec_replicas
        and after.replicas == spec_replicas
        and after.available == spec_replicas
    ):
        return set_condition(
            current,
            _cond(
                "Progressing",
                "True",
                NEW_RS_AVAILABLE,
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                now,
            ),
        )
    if before is not None and (
        after.updated > before.updated
        or after.old < before.old
        or after.ready > before.ready
        or after.available > before.available
    ):
        new = _cond(
            "Progressing", "True", RS_UPDATED, f'ReplicaSet "{rs_name}" is progressing.', now
        )
        if current is not None and current.status == "True":
            new = new.model_copy(update={"lastTransitionTime": current.lastTransitionTime})
        return new  # replaces the current one: lastUpdateTime moves even with the same reason
    if timed_out(current, deadline_s, now):
        return set_condition(
            current,
            _cond(
                "Progressing",
                "False",
                TIMED_OUT,
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                now,
            ),
        )
    return current


def timed_out(current: Condition | None, deadline_s: float, now: float) -> bool:
    """DeploymentTimedOut: no progress for progressDeadlineSeconds since the last update."""
    if current is None or current.reason == NEW_RS_AVAILABLE:
        return False
    if current.reason == TIMED_OUT:
        return True
    since = (
        current.lastUpdateTime if current.lastUpdateTime is not None else current.lastTransitionTime
    )
    return now > since + deadline_s
