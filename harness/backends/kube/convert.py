"""API objects (dicts) -> Gauntlet observation models; RFC3339 -> float epoch seconds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from harness.backends.observe import (
    Condition,
    ContainerState,
    ContainerStatus,
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    Event,
    HPAStatusSample,
    Node,
    ObjectMeta,
    ObjectReference,
    Pod,
    StateRunning,
    StateTerminated,
    StateWaiting,
    Taint,
)

K8sObject = dict[str, Any]
ZONE_LABEL = "topology.kubernetes.io/zone"


def epoch(ts: str | None) -> float | None:
    """RFC3339 (with Z, offsets or fractions, as MicroTime gives) -> epoch seconds."""
    if not ts:
        return None
    text = ts.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _meta(obj: K8sObject) -> K8sObject:
    return obj.get("metadata") or {}


def condition(c: K8sObject, fallback: float) -> Condition:
    return Condition(
        type=str(c.get("type", "")),
        status=c.get("status", "Unknown")
        if c.get("status") in ("True", "False", "Unknown")
        else "Unknown",
        lastTransitionTime=epoch(c.get("lastTransitionTime")) or fallback,
        reason=c.get("reason") or "",
        message=c.get("message") or "",
        lastUpdateTime=epoch(c.get("lastUpdateTime")),
    )


def _state(s: K8sObject | None) -> ContainerState:
    s = s or {}
    out = ContainerState()
    if "running" in s and s["running"] is not None:
        out.running = StateRunning(startedAt=epoch(s["running"].get("startedAt")) or 0.0)
    if "waiting" in s and s["waiting"] is not None:
        w = s["waiting"]
        out.waiting = StateWaiting(reason=w.get("reason") or "", message=w.get("message") or "")
    if "terminated" in s and s["terminated"] is not None:
        t = s["terminated"]
        out.terminated = StateTerminated(
            exitCode=int(t.get("exitCode", 0)),
            reason=t.get("reason") or "",
            startedAt=epoch(t.get("startedAt")),
            finishedAt=epoch(t.get("finishedAt")) or 0.0,
            signal=t.get("signal"),
            message=t.get("message") or "",
        )
    return out


def container_status(cs: K8sObject) -> ContainerStatus:
    return ContainerStatus(
        name=cs.get("name", ""),
        ready=bool(cs.get("ready")),
        started=bool(cs.get("started")),
        restartCount=int(cs.get("restartCount") or 0),
        image=cs.get("image") or "",
        state=_state(cs.get("state")),
        lastState=_state(cs.get("lastState")),
    )


def pod(obj: K8sObject, node_zones: dict[str, str] | None = None) -> Pod:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    created = epoch(meta.get("creationTimestamp")) or 0.0
    node_name = spec.get("nodeName")
    phase = status.get("phase") or "Pending"
    return Pod(
        name=meta.get("name", ""),
        namespace=meta.get("namespace") or "default",
        labels=dict(meta.get("labels") or {}),
        nodeName=node_name,
        zone=(node_zones or {}).get(node_name or ""),
        podIP=status.get("podIP"),
        phase=phase
        if phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown")
        else "Unknown",
        reason=status.get("reason") or "",
        creationTimestamp=created,
        startTime=epoch(status.get("startTime")),
        deletionTimestamp=epoch(meta.get("deletionTimestamp")),
        conditions=[condition(c, created) for c in status.get("conditions") or []],
        containerStatuses=[container_status(cs) for cs in status.get("containerStatuses") or []],
        initContainerStatuses=[
            container_status(cs) for cs in status.get("initContainerStatuses") or []
        ],
    )


def node(obj: K8sObject) -> Node:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    taints = [
        Taint(key=t.get("key", ""), value=t.get("value") or "", effect=t.get("effect"))
        for t in spec.get("taints") or []
        if t.get("effect") in ("NoSchedule", "PreferNoSchedule", "NoExecute")
    ]
    return Node(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        unschedulable=bool(spec.get("unschedulable")),
        taints=taints,
        ready=ready,
        allocatable=_quantities(status.get("allocatable")),
        capacity=_quantities(status.get("capacity")),
    )


def _quantities(resources: K8sObject | None) -> dict[str, str]:
    """A ResourceList (`cpu: "4"`, `memory: 8Gi`) as quantity strings, whatever JSON type came."""
    return {str(k): str(v) for k, v in (resources or {}).items()}


def event(obj: K8sObject) -> Event:
    """core/v1 Event; falls back to events.k8s.io-style fields (eventTime, series) when set."""
    meta = _meta(obj)
    inv = obj.get("involvedObject") or obj.get("regarding") or {}
    first = (
        epoch(obj.get("firstTimestamp"))
        or epoch(obj.get("eventTime"))
        or epoch(meta.get("creationTimestamp"))
        or 0.0
    )
    last = (
        epoch(obj.get("lastTimestamp"))
        or epoch((obj.get("series") or {}).get("lastObservedTime"))
        or first
    )
    source = obj.get("source") or {}
    return Event(
        type="Warning" if obj.get("type") == "Warning" else "Normal",
        reason=obj.get("reason") or "",
        message=obj.get("message") or obj.get("note") or "",
        involvedObject=ObjectReference(
            kind=inv.get("kind") or "",
            name=inv.get("name") or "",
            namespace=inv.get("namespace") or meta.get("namespace") or "default",
        ),
        firstTimestamp=first,
        lastTimestamp=last,
        count=int(obj.get("count") or 1),
        source=source.get("component")
        or obj.get("reportingComponent")
        or obj.get("reportingController")
        or "",
    )


def event_key(obj: K8sObject) -> str:
    """What identifies one Event object across polls: metadata.uid, else namespace/name."""
    meta = _meta(obj)
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def spec_replicas(obj: K8sObject) -> int:
    """spec.replicas of a Deployment (1 when unset, as the API server defaults it)."""
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def deployment_status(obj: K8sObject) -> DeploymentStatus:
    st = obj.get("status") or {}
    return DeploymentStatus(
        replicas=int(st.get("replicas") or 0),
        readyReplicas=int(st.get("readyReplicas") or 0),
        availableReplicas=int(st.get("availableReplicas") or 0),
        updatedReplicas=int(st.get("updatedReplicas") or 0),
        unavailableReplicas=int(st.get("unavailableReplicas") or 0),
        observedGeneration=st.get("observedGeneration"),
        conditions=[condition(c, 0.0) for c in st.get("conditions") or []],
    )


def deployment(obj: K8sObject) -> Deployment:
    """apps/v1 Deployment -> metadata (name, namespace, generation), spec.replicas, status."""
    meta = _meta(obj)
    generation = meta.get("generation")
    return Deployment(
        metadata=ObjectMeta(
            name=meta.get("name", ""),
            namespace=meta.get("namespace") or "default",
            generation=None if generation is None else int(generation),
        ),
        spec=DeploymentSpec(replicas=spec_replicas(obj)),
        status=deployment_status(obj),
    )


def hpa_sample(hpa: K8sObject, t: float, ready_replicas: int | None) -> HPAStatusSample:
    st = hpa.get("status") or {}
    return HPAStatusSample(
        time=t,
        currentReplicas=int(st.get("currentReplicas") or 0),
        desiredReplicas=int(st.get("desiredReplicas") or 0),
        readyReplicas=ready_replicas,
        currentMetrics=list(st.get("currentMetrics") or []),
        conditions=list(st.get("conditions") or []),
        lastScaleTime=epoch(st.get("lastScaleTime")),
    )
