"""The API server's role: the objects controllers and kubelets share, behind one lock.

Controllers and pod workers read and write these objects under `lock` (re-entrant: a
controller holding it may call helpers that take it again). `wake` is the watch: whoever
changes something sets it, and the controller manager resyncs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from harness.backends.local.cluster.events import EventRecorder
from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.kubelet.prober import ProbeRecord
from harness.backends.local.podspec.pod_template import PodTemplate
from harness.backends.local.podspec.rollout_strategy import ROLLING_UPDATE, RolloutSpec
from harness.backends.local.service_proxy import Endpoint
from harness.backends.observe import Condition, HPAStatusSample, Node, ResourceSample
from harness.manifests.bundle import ManifestBundle

TEMPLATE_HASH = "pod-template-hash"
DEFAULT_DEPLOYMENT_NAME = "deployment"


@dataclass
class ReplicaSet:
    """One per pod template (pod-template-hash); never deleted, so a rollback finds it again."""

    hash: str
    created: float
    replicas: int = 0  # spec.replicas
    # the deployment.kubernetes.io/desired-replicas and max-replicas annotations
    desired: int | None = None
    max_replicas: int | None = None


@dataclass
class DeploymentObject:
    """The Deployment: its manifest, spec.replicas (the HPA's), templates by hash, status
    conditions."""

    manifest: dict[str, Any] = field(default_factory=dict)
    name: str = DEFAULT_DEPLOYMENT_NAME
    spec_replicas: int = 0
    template_hash: str = ""  # the current pod template's
    templates: dict[str, PodTemplate] = field(default_factory=dict)
    rollout: RolloutSpec = field(default_factory=lambda: RolloutSpec(0, 0, 1, 0.0, ROLLING_UPDATE))
    conditions: dict[str, Condition] = field(default_factory=dict)  # status.conditions by type

    @property
    def template(self) -> PodTemplate:
        return self.templates[self.template_hash]


class ClusterState:
    def __init__(self, namespace: str, nodes: list[Node]) -> None:
        self.namespace = namespace
        self.lock = threading.RLock()
        self.events = EventRecorder(namespace)
        self.nodes = nodes
        self.bundle: ManifestBundle | None = None
        self.deployment = DeploymentObject()
        self.replicasets: dict[str, ReplicaSet] = {}
        self.pods: dict[str, LocalPod] = {}
        self.gone: list[LocalPod] = []  # deleted pods, kept for include_deleted and pod_url
        self.endpoints: list[Endpoint] = []
        self.samples: list[ResourceSample] = []
        self.hpa_history: list[HPAStatusSample] = []
        self.probe_log: list[ProbeRecord] = []
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.closed = False

    def rs_name(self, h: str) -> str:
        return f"{self.deployment.name}-{h}"

    def active_pods(self) -> list[LocalPod]:
        """Pods not terminating: what ReplicaSets and the Deployment status count."""
        return [p for p in self.pods.values() if p.deletion is None]

    def find_pod(self, name: str) -> LocalPod | None:
        """A live pod, else a deleted one of that name."""
        return self.pods.get(name) or next((g for g in self.gone if g.name == name), None)

    def zone_nodes(self, zone: str) -> list[Node]:
        return [n for n in self.nodes if n.zone == zone]
