"""Observation API shared by every backend, in Kubernetes vocabulary and field names.

Timestamps are float epoch seconds (the local backend has sub-second precision; the kube
backend converts RFC3339). Objects mirror the parts of v1 Pod / Event / Node / HPA status a
scenario needs; `history` fields are Gauntlet additions (Kubernetes keeps only the last value).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ConditionType = Literal[
    "PodScheduled", "Initialized", "ContainersReady", "Ready", "PodReadyToStartContainers"
]


class _Obs(BaseModel):
    """Typed observations: a field no model declares is an error, not a silent extra."""

    model_config = ConfigDict(extra="forbid")


class _ObsAllowingExtras(_Obs):
    """Models a caller outside harness/backends still passes untyped extras to.

    TODO(backend seam): forbid once they are gone -- HPAStatusSample: the local backend's HPA
    controller (`reason=`, `error=`; Kubernetes reports those in the AbleToScale/ScalingActive
    conditions, which the sample already carries).
    """

    model_config = ConfigDict(extra="allow")


class Condition(_Obs):
    type: str
    status: Literal["True", "False", "Unknown"]
    lastTransitionTime: float
    reason: str = ""
    message: str = ""
    lastUpdateTime: float | None = (
        None  # Deployment conditions: when the controller last refreshed it
    )


class StateRunning(_Obs):
    startedAt: float


class StateWaiting(_Obs):
    reason: str  # ContainerCreating | CrashLoopBackOff | ...
    message: str = ""


class StateTerminated(_Obs):
    exitCode: int
    reason: str  # OOMKilled | Error | Completed
    startedAt: float | None = None
    finishedAt: float
    signal: int | None = None
    message: str = ""


class ContainerState(_Obs):
    running: StateRunning | None = None
    waiting: StateWaiting | None = None
    terminated: StateTerminated | None = None


class ContainerStatus(_Obs):
    name: str
    ready: bool = False
    started: bool = False
    restartCount: int = 0
    image: str = ""
    state: ContainerState = Field(default_factory=ContainerState)
    lastState: ContainerState = Field(default_factory=ContainerState)


class Pod(_Obs):
    name: str
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    nodeName: str | None = None
    zone: str | None = None  # topology.kubernetes.io/zone of nodeName
    podIP: str | None = None
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] = "Pending"
    reason: str = ""  # e.g. Evicted
    creationTimestamp: float
    startTime: float | None = None
    deletionTimestamp: float | None = None
    conditions: list[Condition] = Field(default_factory=list)
    containerStatuses: list[ContainerStatus] = Field(default_factory=list)
    initContainerStatuses: list[ContainerStatus] = Field(default_factory=list)
    conditionHistory: list[Condition] = Field(default_factory=list, description="every transition")

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        c = self.condition("Ready")
        return c is not None and c.status == "True"

    def first_transition(self, type_: str, status: str = "True") -> float | None:
        """First time a condition became `status` (cold start uses the first Ready)."""
        times = [
            c.lastTransitionTime
            for c in self.conditionHistory
            if c.type == type_ and c.status == status
        ]
        if times:
            return min(times)
        c = self.condition(type_)
        return c.lastTransitionTime if c is not None and c.status == status else None

    @property
    def restarts(self) -> int:
        return sum(cs.restartCount for cs in self.containerStatuses)


class ObjectReference(_Obs):
    kind: str
    name: str
    namespace: str = "default"


class Event(_Obs):
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str  # Unhealthy, Killing, BackOff, OOMKilling, SuccessfulRescale, FailedScheduling...
    message: str = ""
    involvedObject: ObjectReference
    firstTimestamp: float
    lastTimestamp: float
    count: int = 1
    source: str = ""  # kubelet, horizontal-pod-autoscaler, default-scheduler, gauntlet


class Taint(_Obs):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Node(_Obs):
    """v1 Node: metadata.name/labels, spec.unschedulable/taints, status.allocatable/capacity
    (quantity strings), and `ready` (the Ready condition is True)."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    unschedulable: bool = False
    taints: list[Taint] = Field(default_factory=list)
    ready: bool = True
    allocatable: dict[str, str] = Field(default_factory=dict)
    capacity: dict[str, str] = Field(default_factory=dict)

    @property
    def zone(self) -> str | None:
        return self.labels.get("topology.kubernetes.io/zone")


class HPAStatusSample(_ObsAllowingExtras):
    """autoscaling/v2 HorizontalPodAutoscalerStatus at one moment (plus the sample time)."""

    time: float
    currentReplicas: int
    desiredReplicas: int
    readyReplicas: int | None = None  # from the Deployment, for plotting desired vs ready
    currentMetrics: list[dict[str, Any]] = Field(default_factory=list)
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    lastScaleTime: float | None = None


class DeploymentStatus(_Obs):
    """apps/v1 DeploymentStatus (the spec's replica count is `Deployment.spec.replicas`)."""

    replicas: int = 0
    readyReplicas: int = 0
    availableReplicas: int = 0
    updatedReplicas: int = 0
    unavailableReplicas: int = 0
    observedGeneration: int | None = None
    conditions: list[Condition] = Field(default_factory=list)  # Available, Progressing

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class ObjectMeta(_Obs):
    """The parts of metadata a scenario reads (generation: bumped by every spec change)."""

    name: str
    namespace: str = "default"
    generation: int | None = None


class DeploymentSpec(_Obs):
    replicas: int = 1  # the API server's default when a manifest leaves it out


class Deployment(_Obs):
    """The parts of an apps/v1 Deployment a scenario reads: spec.replicas and the status."""

    metadata: ObjectMeta
    spec: DeploymentSpec = Field(default_factory=DeploymentSpec)
    status: DeploymentStatus = Field(default_factory=DeploymentStatus)


class ResourceSample(_Obs):
    time: float
    pod: str
    cpu_cores: float | None = None  # usage averaged since the previous sample
    cpu_usage_s: float | None = None  # cumulative CPU seconds (container_cpu_usage_seconds_total)
    cpu_request_cores: float | None = None
    cpu_limit_cores: float | None = None
    memory_bytes: int | None = None  # working set (cgroup usage minus inactive file) or RSS
    memory_limit_bytes: int | None = None
    oom_kills: int | None = None  # cgroup memory.oom_control oom_kill / docker OOMKilled
    # CFS quota accounting, cumulative, as cAdvisor's
    # container_cpu_cfs_{periods,throttled_periods}_total and _throttled_seconds_total (cgroup
    # cpu.stat; None where no CPU limit is enforced)
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_s: float | None = None


class FaultKind(StrEnum):
    """Every fault a backend can inject; faults, game days and reports share these names."""

    ZONE_OUTAGE = "zone-outage"
    RESTORE = "restore"
    DRAIN = "drain"
    KILL_POD = "kill-pod"
    HANG = "hang"
    MEMORY_PRESSURE = "memory-pressure"
    ROLLOUT_RESTART = "rollout-restart"
    TRAFFIC_SPIKE = "spike"


class FaultRecord(_Obs):
    """Proof that a fault landed: what was touched, when, and whether it took effect."""

    kind: FaultKind
    target: str
    started_at: float
    ended_at: float | None = None
    affected: list[str] = Field(default_factory=list)  # pods / nodes actually hit
    landed: bool
    detail: str = ""
    # drain only: pods whose Eviction a PodDisruptionBudget refused, and the 429s answered
    evictions_blocked: list[str] = Field(default_factory=list)
    eviction_429s: int = 0
