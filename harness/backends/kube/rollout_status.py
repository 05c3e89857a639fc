"""Deployment rollout status with the Deployment controller's own semantics (as `kubectl
rollout status` reads them): observedGeneration, updated/ready/available replicas and the
Progressing condition (ProgressDeadlineExceeded is a failure, not something to wait out)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.backends.kube.convert import K8sObject, spec_replicas


@dataclass(frozen=True)
class RolloutState:
    done: bool
    failed: bool
    message: str


def rollout_state(dep: K8sObject, want_ready: int | None = None) -> RolloutState:
    meta, st = dep.get("metadata") or {}, dep.get("status") or {}
    name = meta.get("name", "?")
    generation = meta.get("generation")
    observed = st.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return RolloutState(
            False,
            False,
            f"deployment {name}: waiting for the controller to observe "
            f"generation {generation} (observed {observed})",
        )
    for c in st.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState(
                False,
                True,
                f"deployment {name} exceeded its progress deadline "
                f"(ProgressDeadlineExceeded): {c.get('message', '')}".strip(),
            )
    replicas = spec_replicas(dep)
    want = replicas if want_ready is None else want_ready
    updated = int(st.get("updatedReplicas") or 0)
    total = int(st.get("replicas") or 0)
    ready = int(st.get("readyReplicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    if updated < min(want, replicas):
        return RolloutState(
            False, False, f"deployment {name}: {updated} of {replicas} updated replicas"
        )
    if want_ready is None and total > updated:
        return RolloutState(
            False, False, f"deployment {name}: {total - updated} old replicas pending termination"
        )
    if available < want or ready < want:
        return RolloutState(
            False, False, f"deployment {name}: {ready} ready / {available} available of {want}"
        )
    return RolloutState(True, False, f"deployment {name}: {available} of {want} available")
