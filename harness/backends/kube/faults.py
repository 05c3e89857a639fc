"""The kube backend's faults: delete a pod, lose or drain a zone (and restore it), hang a pod,
restart a rollout. Functions of the `KubeBackend` (a `KubeTarget`) they act through, which
delegates to them; each checks that chaos is allowed on the backend's context before it
touches anything."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from typing import Any, Protocol

from harness.backends.base import RESTARTED_AT, BackendError, RolloutWatch, restarted_at_stamp
from harness.backends.kube import convert, zones
from harness.backends.kube.api import KubeApi, KubeApiError, resource_path
from harness.backends.kube.rollout_status import RolloutState, rollout_state
from harness.backends.kube.safety import check_chaos
from harness.backends.observe import FaultKind, FaultRecord
from harness.servers.kinds import detect

log = logging.getLogger("harness.backends.kube")


class KubeTarget(Protocol):
    """What the faults need of the backend they act through (`KubeBackend`), named here so this
    module does not import the backend that imports it."""

    api: KubeApi
    context: str
    kubeconfig: str | None
    namespace: str
    chaos_allowed: bool
    poll_s: float
    zone_outage_mode: zones.ZoneOutageMode
    zone_outage_dry_run: bool
    eviction_retry_s: float
    outage_wait_s: float
    node_changes: zones.NodeChanges
    _kubectl: str | None

    def pod_url(self, pod: str) -> str: ...

    def drain_zone(self, zone: str, timeout_s: float = 60.0) -> FaultRecord: ...

    def _zones(self, refresh: bool = False) -> dict[str, str]: ...

    def _dep_name(self) -> str: ...


def delete_pod(backend: KubeTarget, pod: str, grace_period_s: float | None = None) -> FaultRecord:
    check_chaos("delete_pod", backend.context, backend.chaos_allowed)
    log.info("deleting pod %s/%s (grace %s)", backend.namespace, pod, grace_period_s)
    started = time.time()
    query = {"gracePeriodSeconds": int(grace_period_s)} if grace_period_s is not None else {}
    try:
        backend.api.delete(resource_path("v1", "Pod", backend.namespace, pod), **query)
    except KubeApiError as exc:
        return FaultRecord(
            kind=FaultKind.KILL_POD,
            target=pod,
            started_at=started,
            ended_at=time.time(),
            landed=False,
            detail=f"delete refused: {exc}",
        )
    landed = _gone_or_terminating(backend, pod)
    return FaultRecord(
        kind=FaultKind.KILL_POD,
        target=pod,
        started_at=started,
        ended_at=time.time(),
        affected=[pod],
        landed=landed,
        detail="pod deleted" if landed else "pod still present and not terminating",
    )


def _gone_or_terminating(backend: KubeTarget, pod: str, uid: str | None = None) -> bool:
    try:
        obj = backend.api.get(resource_path("v1", "Pod", backend.namespace, pod))
    except KubeApiError as exc:
        return exc.status == 404
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) or (uid is not None and meta.get("uid") != uid)


def _zone_nodes(backend: KubeTarget, zone: str) -> list[dict[str, Any]]:
    nodes = zones.zone_nodes(backend.api, zone)
    if not nodes:
        present = sorted({z for z in backend._zones(refresh=True).values() if z})
        raise BackendError(
            f"no node is labelled {convert.ZONE_LABEL}={zone} "
            f"(zones present: {', '.join(present) or 'none'})"
        )
    return nodes


def outage_plan(backend: KubeTarget, zone: str) -> zones.OutagePlan:
    """What `zone_outage` would touch in the backend's mode: read only, changes nothing."""
    return zones.outage_plan(
        backend.api, zone, _zone_nodes(backend, zone), backend.namespace, backend.zone_outage_mode
    )


def dry_run_lines(backend: KubeTarget, asked: list[str | None]) -> list[str]:
    """The zone faults' dry run (`gauntlet gameday --dry-run` on kube): for each zone asked
    (None: chosen at run time, so every zone of the cluster) every pod of any namespace the
    fault would touch, in the backend's mode. Reads only; needs no chaos permission."""
    chosen = [z for z in asked if z]
    if len(chosen) < len(asked):
        chosen = list(backend._zones(refresh=True).values())
    names = sorted({z for z in chosen if z})
    out: list[str] = []
    for zone in names:
        out += outage_plan(backend, zone).lines()
    return out or ["no node carries a zone label: nothing a zone fault could touch"]


def _announce(backend: KubeTarget, action: str, plan: zones.OutagePlan) -> list[dict[str, Any]]:
    """Log every pod of any namespace on the zone's nodes and its fate; our pods there."""
    log.warning("%s on context %s:\n%s", action, backend.context, "\n".join(plan.lines()))
    mine = {p.name for p in plan.pods if p.namespace == backend.namespace}
    return [
        p
        for p in zones.pods_on(backend.api, plan.nodes, backend.namespace)
        if p["metadata"]["name"] in mine
    ]


def zone_outage(backend: KubeTarget, zone: str) -> FaultRecord:
    """Lose a zone. Default ("evict"): cordon its nodes and evict only the run's own pods there
    through the Eviction API (PDB 429s retried, bounded by `outage_wait_s`). "taint": cordon +
    NoExecute taint, which evicts every other tenant's pods too (listed first). With
    `zone_outage_dry_run`, only the plan is logged and returned (not landed)."""
    check_chaos("zone_outage", backend.context, backend.chaos_allowed)
    if backend.zone_outage_dry_run:
        started = time.time()
        plan = outage_plan(backend, zone)
        log.warning("zone outage dry run (nothing changed):\n%s", "\n".join(plan.lines()))
        return FaultRecord(
            kind=FaultKind.ZONE_OUTAGE,
            target=zone,
            started_at=started,
            ended_at=time.time(),
            landed=False,
            detail="dry run, nothing changed: " + "; ".join(plan.lines()),
        )
    if backend.zone_outage_mode == "drain":  # a drain, named an outage: PDBs may block it
        rec = backend.drain_zone(zone, timeout_s=backend.outage_wait_s)
        return rec.model_copy(update={"kind": FaultKind.ZONE_OUTAGE})
    started = time.time()
    plan = outage_plan(backend, zone)
    names = plan.nodes
    taint = backend.zone_outage_mode == "taint"
    how = "cordon + NoExecute taint" if taint else "cordon + Eviction API, our pods only"
    mine = _announce(backend, f"zone outage ({how})", plan)
    for name in names:
        backend.node_changes.cordon(backend.api, name)
        if taint:
            backend.node_changes.taint(backend.api, name, zone)
    if taint:
        done = (
            f"tainted {zones.OUTAGE_TAINT_KEY}={zone}:NoExecute and cordoned {len(names)} node(s)"
        )
        others = (
            f"{len(plan.other_tenants_touched)} pod(s) of other namespaces evicted by the taint"
        )
        if plan.other_tenants_touched:
            others += ": " + ", ".join(
                f"{p.namespace}/{p.name}" for p in plan.other_tenants_touched
            )
    else:
        done = f"cordoned {len(names)} node(s); " + _evict_or_delete(backend, mine)
        others = f"{len(plan.pods) - len(mine)} pod(s) of other namespaces on those nodes untouched"
    uids = {p["metadata"]["name"]: p["metadata"].get("uid") for p in mine}
    gone: list[str] = []
    deadline = time.monotonic() + backend.outage_wait_s
    while True:
        gone = [p for p, uid in uids.items() if _gone_or_terminating(backend, p, uid)]
        if len(gone) == len(uids) or time.monotonic() > deadline:
            break
        time.sleep(min(backend.poll_s, 1.0))
    landed = len(gone) == len(uids)
    detail = f"{done}; {len(gone)}/{len(uids)} of our pods in the zone gone; {others}"
    if not landed:
        detail += f"; not all ours gone within {backend.outage_wait_s:.0f}s (tolerations?)"
    return FaultRecord(
        kind=FaultKind.ZONE_OUTAGE,
        target=zone,
        started_at=started,
        ended_at=time.time(),
        affected=names + gone,
        landed=landed,
        detail=detail,
    )


def _evict_or_delete(backend: KubeTarget, pods: list[dict[str, Any]]) -> str:
    """Evict each pod once; one a disruption budget protects (429) is deleted instead: a lost
    zone asks no PodDisruptionBudget (the node lifecycle controller deletes a dead node's pods
    without one), so a PDB must not make the outage a no-op. `drain_zone` is the voluntary,
    PDB-bound disruption."""
    out = zones.drain(backend.api, pods, timeout_s=0.0, retry_s=backend.eviction_retry_s)
    deleted: list[str] = []
    for name in sorted(out.blocked):
        try:
            backend.api.delete(resource_path("v1", "Pod", backend.namespace, name))
            deleted.append(name)
        except KubeApiError as exc:
            out.failed[name] = f"{exc.status}: {exc.message or exc.reason}"
    text = f"evicted {len(out.evicted)}/{len(pods)} of our pod(s)"
    if deleted:
        text += (
            f", {len(deleted)} a PodDisruptionBudget protects deleted instead (an outage asks "
            f"no budget): {', '.join(deleted)}"
        )
    if out.failed:
        text += "; failed: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items())
    return text


def restore_zone(backend: KubeTarget, zone: str) -> FaultRecord:
    started = time.time()
    nodes = {n["metadata"]["name"] for n in zones.zone_nodes(backend.api, zone)}
    log.info("restoring zone %s: untaint/uncordon %s", zone, ", ".join(sorted(nodes)) or "no nodes")
    try:
        touched = backend.node_changes.restore(backend.api, only=nodes)
    except KubeApiError as exc:
        return FaultRecord(
            kind=FaultKind.RESTORE,
            target=zone,
            started_at=started,
            ended_at=time.time(),
            landed=False,
            detail=f"restore failed (teardown tries again): {exc}",
        )
    return FaultRecord(
        kind=FaultKind.RESTORE,
        target=zone,
        started_at=started,
        ended_at=time.time(),
        affected=touched,
        landed=True,
        detail=f"restored {len(touched)} node(s)" if touched else "nothing to restore",
    )


def drain_zone(backend: KubeTarget, zone: str, timeout_s: float = 60.0) -> FaultRecord:
    """Cordon the zone's nodes and evict the run's own pods there through the Eviction API
    (other namespaces' pods are listed, never touched)."""
    check_chaos("drain_zone", backend.context, backend.chaos_allowed)
    started = time.time()
    plan = zones.outage_plan(
        backend.api, zone, _zone_nodes(backend, zone), backend.namespace, "evict"
    )
    names = plan.nodes
    mine = _announce(backend, "drain (cordon + Eviction API, our pods only)", plan)
    for name in names:
        backend.node_changes.cordon(backend.api, name)
    out = zones.drain(backend.api, mine, timeout_s=timeout_s, retry_s=backend.eviction_retry_s)
    parts = [f"cordoned {len(names)} node(s); evicted {len(out.evicted)}/{len(mine)} pod(s)"]
    untouched = len(plan.pods) - len(mine)
    parts.append(f"{untouched} pod(s) of other namespaces on those nodes untouched")
    if out.blocked:
        msg = next(iter(out.blocked.values()))
        parts.append(
            f"{len(out.blocked)} blocked by a PodDisruptionBudget (429 x{out.attempts_429}): {msg}"
        )
    if out.failed:
        parts.append("failed: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))
    return FaultRecord(
        kind=FaultKind.DRAIN,
        target=zone,
        started_at=started,
        ended_at=time.time(),
        affected=names + out.evicted,
        landed=not out.blocked and not out.failed,
        detail="; ".join(parts),
        evictions_blocked=sorted(out.blocked),
        eviction_429s=out.attempts_429,
    )


def hang_pod(backend: KubeTarget, pod: str) -> FaultRecord:
    """SIGSTOP the pod's first container from its node, with proof (see `hang`)."""
    from harness.backends.kube import hang  # hang.py imports nothing of this module

    return hang.hang_pod(backend, pod, lambda: unresponsive(backend, pod, health_path(backend)))


def rollout_restart(backend: KubeTarget, timeout_s: float = 300.0) -> FaultRecord:
    """`kubectl rollout restart`: merge-patch the restartedAt template annotation, then wait for
    the rollout as `kubectl rollout status` does (observedGeneration, updated, available, no
    old replicas); old pods may still be terminating when it returns."""
    check_chaos("rollout_restart", backend.context, backend.chaos_allowed)
    name = backend._dep_name()
    path = resource_path("apps/v1", "Deployment", backend.namespace, name)
    started = time.time()
    stamp = restarted_at_stamp(started)
    log.warning(
        "rollout restart of deployment %s/%s on context %s (%s=%s)",
        backend.namespace,
        name,
        backend.context,
        RESTARTED_AT,
        stamp,
    )
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    before = _pod_names(backend)
    try:
        backend.api.merge_patch(path, patch)
    except KubeApiError as exc:
        return FaultRecord(
            kind=FaultKind.ROLLOUT_RESTART,
            target=name,
            started_at=started,
            ended_at=time.time(),
            landed=False,
            detail=f"patch refused: {exc}",
        )
    watch = RolloutWatch()
    state = _watch_rollout(backend, path, watch, time.monotonic() + timeout_s)
    took = time.time() - started
    if state.done:
        detail = f"complete in {took:.1f}s"
    elif state.failed:
        detail = f"failed after {took:.1f}s: {state.message}"
    else:
        detail = f"not complete after {timeout_s:.0f}s: {state.message}"
    replaced = sorted(before - _pod_names(backend))
    return FaultRecord(
        kind=FaultKind.ROLLOUT_RESTART,
        target=name,
        started_at=started,
        ended_at=time.time(),
        affected=replaced,
        landed=state.done,
        detail=f"restartedAt {stamp}: {detail}; {watch.summary()}",
    )


def _pod_names(backend: KubeTarget) -> set[str]:
    try:
        return {
            p["metadata"]["name"]
            for p in backend.api.list(resource_path("v1", "Pod", backend.namespace))
        }
    except KubeApiError:
        return set()


def _watch_rollout(
    backend: KubeTarget, path: str, watch: RolloutWatch, deadline: float
) -> RolloutState:
    """Poll the Deployment until its rollout is done, failed, or the deadline passes."""
    state = RolloutState(False, False, "no Deployment status read yet")
    while True:
        try:
            dep = backend.api.get(path)
        except KubeApiError as exc:  # a transient API error: keep waiting until the deadline
            state = RolloutState(False, False, f"reading the Deployment failed: {exc}")
        else:
            state = rollout_state(dep)
            st = dep.get("status") or {}
            replicas = (dep.get("spec") or {}).get("replicas")
            watch.observe(
                1 if replicas is None else int(replicas),
                int(st.get("replicas") or 0),
                int(st.get("availableReplicas") or 0),
            )
        if state.done or state.failed or time.monotonic() > deadline:
            return state
        time.sleep(min(backend.poll_s, 2.0))


def health_path(backend: KubeTarget) -> str:
    """Where the deployed server answers health (its kind's), else the root path: any answer
    (even an error status) means the process still serves."""
    bundle = getattr(backend, "bundle", None)
    kind = detect(bundle.deployment) if bundle is not None else None
    return (kind.health_path if kind else None) or "/"


def unresponsive(backend: KubeTarget, pod: str, path: str = "/", timeout_s: float = 3.0) -> bool:
    try:
        url = backend.pod_url(pod) + path
    except BackendError:
        return False
    try:
        urllib.request.urlopen(url, timeout=timeout_s).close()
        return False
    except urllib.error.HTTPError:
        return False  # it answered, even if with an error
    except (urllib.error.URLError, TimeoutError, OSError):
        return True
