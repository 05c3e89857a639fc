"""A pod object: its spec (the template it was made from) and the status the kubelet writes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.backends.local.kubelet.runtime import ContainerHandle
from harness.backends.local.podspec.pod_template import PodTemplate
from harness.backends.observe import (
    Condition,
    ContainerState,
    ContainerStatus,
    Pod,
    StateWaiting,
)


@dataclass
class LocalPod:
    """Mutated by its kubelet and the controllers, always under the cluster lock."""

    name: str
    namespace: str
    labels: dict[str, str]
    template: PodTemplate
    creation: float
    node_name: str | None = None
    zone: str | None = None
    pod_ip: str | None = None
    phase: str = "Pending"
    reason: str = ""
    start_time: float | None = None
    deletion: float | None = None
    finished: bool = False  # fully terminated (gone from the API)
    conditions: dict[str, Condition] = field(default_factory=dict)
    history: list[Condition] = field(default_factory=list)
    # container 0 status
    restart_count: int = 0
    started: bool = False
    ready: bool = False
    state: ContainerState = field(
        default_factory=lambda: ContainerState(waiting=StateWaiting(reason="ContainerCreating"))
    )
    last_state: ContainerState = field(default_factory=ContainerState)
    handle: ContainerHandle | None = None
    container_id: int = 0  # increments per container start
    started_at: float | None = None
    hung: bool = False
    env: dict[str, str] = field(default_factory=dict)
    init_statuses: list[ContainerStatus] = field(default_factory=list)

    def set_condition(self, type_: str, status: str, reason: str = "", message: str = "") -> None:
        cur = self.conditions.get(type_)
        if cur is not None and cur.status == status:
            return
        c = Condition(
            type=type_,
            status=status,
            lastTransitionTime=time.time(),
            reason=reason,
            message=message,
        )
        self.conditions[type_] = c
        self.history.append(c)

    @property
    def serving(self) -> bool:
        """In the Service's ready endpoints: Ready and not terminating."""
        return self.ready and self.deletion is None and not self.finished

    def to_observed(self) -> Pod:
        c = self.template.main
        cs = ContainerStatus(
            name=c.name,
            ready=self.ready,
            started=self.started,
            restartCount=self.restart_count,
            image=c.image,
            state=self.state.model_copy(deep=True),
            lastState=self.last_state.model_copy(deep=True),
        )
        return Pod(
            name=self.name,
            namespace=self.namespace,
            labels=dict(self.labels),
            nodeName=self.node_name,
            zone=self.zone,
            podIP=self.pod_ip,
            phase=self.phase,
            reason=self.reason,
            creationTimestamp=self.creation,
            startTime=self.start_time,
            deletionTimestamp=self.deletion,
            conditions=list(self.conditions.values()),
            containerStatuses=[cs],
            initContainerStatuses=[st.model_copy(deep=True) for st in self.init_statuses],
            conditionHistory=list(self.history),
        )
