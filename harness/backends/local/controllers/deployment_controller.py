"""The Deployment controller (pkg/controller/deployment): ReplicaSet sizes, then the status.

`sync` sizes the ReplicaSets for spec.replicas and the strategy (deployment_rollout.py has the
arithmetic); `sync_status` sets Available and Progressing (deployment_conditions.py). Both
run under the cluster lock, from the controller manager's loop.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from harness.backends.base import RESTARTED_AT, RolloutWatch, restarted_at_stamp
from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.cluster.state import TEMPLATE_HASH, ClusterState, ReplicaSet
from harness.backends.local.controllers import deployment_conditions as conditions
from harness.backends.local.controllers import deployment_rollout as rollout
from harness.backends.local.podspec.pod_template import PodTemplate
from harness.backends.local.podspec.rollout_strategy import (
    ROLLING_UPDATE,
    RolloutSpec,
    parse_rollout,
)
from harness.backends.observe import (
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    FaultKind,
    FaultRecord,
    ObjectMeta,
)


class DeploymentController:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._salt = uuid.uuid4().hex  # template hashes differ between runs, as pod names must
        self._last_counts: conditions.Counts | None = None  # the status of the previous sync

    # the object ----------------------------------------------------------------------------
    def template_hash(self, manifest: dict[str, Any]) -> str:
        """pod-template-hash: a digest of spec.template (the same template -> the same
        ReplicaSet)."""
        tpl = (manifest.get("spec") or {}).get("template") or {}
        text = json.dumps(tpl, sort_keys=True, default=str)
        return hashlib.sha256((self._salt + text).encode()).hexdigest()[:10]

    def apply(self, manifest: dict[str, Any], template: PodTemplate) -> str:
        """Write a new manifest (template, strategy; not spec.replicas, the HPA's); returns the
        pod-template-hash now current. An earlier template gets its ReplicaSet back (a rollback)."""
        h = self.template_hash(manifest)
        d = self.state.deployment
        with self.state.lock:
            d.manifest = manifest
            d.templates.setdefault(h, template)
            d.template_hash = h
            d.rollout = self.rollout_spec()
        self.state.wake.set()
        return h

    def rollout_spec(self) -> RolloutSpec:
        """spec.strategy resolved against the current spec.replicas (percentages follow scale())."""
        d = self.state.deployment
        spec = {**(d.manifest.get("spec") or {}), "replicas": d.spec_replicas}
        return parse_rollout({"spec": spec}, self.state.bundle.source if self.state.bundle else "")

    # sync ------------------------------------------------------------------------------------
    def sync(self, now: float) -> None:
        """ReplicaSet sizes for spec.replicas and the strategy (under the lock)."""
        s, d = self.state, self.state.deployment
        d.rollout = self.rollout_spec()
        current = d.template_hash
        if current not in s.replicasets:
            s.replicasets[current] = ReplicaSet(current, created=now)
            d.conditions["Progressing"] = conditions.new_replicaset_created(
                d.conditions.get("Progressing"), s.rs_name(current), now
            )
        available: dict[str, int] = dict.fromkeys(s.replicasets, 0)
        for p in s.pods.values():
            h = p.labels.get(TEMPLATE_HASH, "")
            if h in available and self.available(p, now):
                available[h] += 1
        states = {
            h: rollout.ReplicaSetState(h, rs.replicas, available[h], rs.created)
            for h, rs in s.replicasets.items()
        }
        new = states.pop(current)
        old_running = any(
            p.labels.get(TEMPLATE_HASH) != current
            and not p.finished
            and p.phase not in ("Succeeded", "Failed")
            for p in s.pods.values()
        )
        r = d.rollout
        spec = d.spec_replicas
        strategy = rollout.Strategy(r.strategy, spec, r.max_surge, r.max_unavailable)
        sizes = {h: rs.replicas for h, rs in s.replicasets.items()}
        desired = {h: rs.desired for h, rs in s.replicasets.items() if rs.desired is not None}
        if rollout.is_scaling_event(sizes, desired, spec):
            cur = s.replicasets[current]
            saturated = new.replicas == spec and cur.desired == spec and new.available == spec
            max_before = {
                h: rs.max_replicas for h, rs in s.replicasets.items() if rs.max_replicas is not None
            }
            changes = rollout.scale(
                strategy, new, list(states.values()), max_before, len(s.active_pods()), saturated
            )
            for h, n in sizes.items():
                changes.setdefault(h, n)  # every active set is re-annotated for the new count
        else:
            changes = rollout.plan(strategy, new, list(states.values()), old_running)
            changes.setdefault(current, new.replicas)
        for h, size in changes.items():
            self._scale_replicaset(s.replicasets[h], size)

    def _scale_replicaset(self, rs: ReplicaSet, size: int) -> None:
        """scaleReplicaSet: the size, and the desired-/max-replicas annotations it was sized for."""
        d = self.state.deployment
        r = d.rollout
        rs.desired = d.spec_replicas
        rs.max_replicas = d.spec_replicas + (r.max_surge if r.strategy == ROLLING_UPDATE else 0)
        old = rs.replicas
        if size == old:
            return
        rs.replicas = size
        self.state.events.record(
            "Deployment",
            d.name,
            "ScalingReplicaSet",
            f"Scaled {'up' if size > old else 'down'} replica set "
            f"{self.state.rs_name(rs.hash)} to {size}",
            source="deployment-controller",
        )

    def sync_status(self, now: float) -> None:
        """syncRolloutStatus (under the lock): Available and Progressing from this sync's counts."""
        d = self.state.deployment
        counts = self.counts(now)
        r = d.rollout
        unavailable = rollout.max_unavailable(
            rollout.Strategy(r.strategy, d.spec_replicas, r.max_surge, r.max_unavailable)
        )
        d.conditions["Available"] = conditions.available(
            d.conditions.get("Available"), d.spec_replicas, unavailable, counts.available, now
        )
        cond = conditions.progressing(
            d.conditions.get("Progressing"),
            self.state.rs_name(d.template_hash),
            d.spec_replicas,
            self._last_counts,
            counts,
            r.progress_deadline_s,
            now,
        )
        if cond is not None:
            d.conditions["Progressing"] = cond
        self._last_counts = counts

    # status ----------------------------------------------------------------------------------
    def available(self, p: LocalPod, now: float) -> bool:
        cond = p.conditions.get("Ready")
        since = cond.lastTransitionTime if cond is not None and cond.status == "True" else None
        return (
            p.deletion is None
            and not p.finished
            and rollout.is_available(p.ready, since, self.state.deployment.rollout.min_ready_s, now)
        )

    def counts(self, now: float) -> conditions.Counts:
        active = self.state.active_pods()
        current = self.state.deployment.template_hash
        return conditions.Counts(
            replicas=len(active),
            updated=sum(1 for p in active if p.labels.get(TEMPLATE_HASH) == current),
            ready=sum(1 for p in active if p.ready),
            available=sum(1 for p in active if self.available(p, now)),
        )

    def observed(self) -> Deployment:
        """The Deployment as `kubectl get -o yaml` shows it: updated = pods of the current template;
        available honours minReadySeconds; the conditions as the last sync set them."""
        s, d = self.state, self.state.deployment
        with s.lock:
            c = self.counts(time.time())
            desired = max(d.spec_replicas, sum(rs.replicas for rs in s.replicasets.values()))
            status = DeploymentStatus(
                replicas=c.replicas,
                readyReplicas=c.ready,
                availableReplicas=c.available,
                updatedReplicas=c.updated,
                unavailableReplicas=max(0, desired - c.available),
                conditions=[x.model_copy() for x in d.conditions.values()],
            )
            return Deployment(
                metadata=ObjectMeta(name=d.name, namespace=s.namespace),
                spec=DeploymentSpec(replicas=d.spec_replicas),
                status=status,
            )

    def rollout_progress(
        self, new_hash: str, watch: RolloutWatch, since: float
    ) -> tuple[bool, bool, str]:
        """(rollout complete?, past its progress deadline?, what is missing), sampling
        surge/unavailability into `watch`. Only a deadline crossed after `since` counts: a
        ProgressDeadlineExceeded left by an earlier rollout is not this one's. Complete means
        every old pod terminated, not only terminating."""
        with self.state.lock:
            dep = self.observed()
            old_left = sum(
                1
                for p in self.state.pods.values()
                if p.labels.get(TEMPLATE_HASH) != new_hash and not p.finished
            )
        st, spec = dep.status, dep.spec.replicas
        watch.observe(spec, st.replicas, st.availableReplicas)
        done = (
            st.updatedReplicas == st.replicas == spec
            and st.availableReplicas >= spec
            and old_left == 0
        )
        prog = st.condition("Progressing")
        failed = (
            prog is not None
            and prog.reason == conditions.TIMED_OUT
            and prog.lastTransitionTime >= since
        )
        return (
            done,
            failed,
            (
                f"{st.updatedReplicas}/{spec} updated, {st.availableReplicas} available, "
                f"{old_left} old pod(s) not yet terminated"
            ),
        )

    def rollout_restart(
        self, update_template: Callable[[Callable[[dict[str, Any]], None]], str], timeout_s: float
    ) -> FaultRecord:
        """`kubectl rollout restart`: a new restartedAt annotation (through `update_template`, which
        validates like the API server), then the rollout watched to its end or `timeout_s`."""
        s = self.state
        started = time.time()
        stamp = restarted_at_stamp(started)
        with s.lock:
            old_hash = s.deployment.template_hash
            old_pods = sorted(p.name for p in s.pods.values() if not p.finished)

        def annotate(dep: dict[str, Any]) -> None:
            meta = dep.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
            meta.setdefault("annotations", {})[RESTARTED_AT] = stamp

        new_hash = update_template(annotate)
        watch = RolloutWatch()
        deadline = time.monotonic() + timeout_s
        while True:
            done, failed, missing = self.rollout_progress(new_hash, watch, started)
            if done or failed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        took = time.time() - started
        r = s.deployment.rollout
        knobs = (
            f"{r.strategy} maxSurge {r.max_surge} maxUnavailable {r.max_unavailable}"
            if r.strategy == ROLLING_UPDATE
            else r.strategy
        )
        head = f"{s.rs_name(old_hash)} -> {s.rs_name(new_hash)} ({knobs}, restartedAt {stamp}): "
        if done:
            detail = f"complete in {took:.1f}s"
        elif failed:
            detail = (
                f"failed after {took:.1f}s: exceeded its progress deadline "
                f"({conditions.TIMED_OUT}, "
                f"progressDeadlineSeconds {r.progress_deadline_s:g}): {missing}"
            )
        else:
            detail = f"not complete after {timeout_s:.0f}s: {missing}"
        return FaultRecord(
            kind=FaultKind.ROLLOUT_RESTART,
            target=s.deployment.name,
            started_at=started,
            ended_at=time.time(),
            affected=old_pods,
            landed=done,
            detail=f"{head}{detail}; {watch.summary()}",
        )
