"""An in-memory ClusterState with the stand-in's Deployment.

For controller unit tests (no processes).
"""

from __future__ import annotations

import time
from typing import Any

from standin_specs import bundle, deployment

from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.cluster.state import TEMPLATE_HASH, ClusterState
from harness.backends.local.controllers.scheduler_controller import make_nodes
from harness.backends.local.podspec.pod_template import parse_template
from harness.backends.local.podspec.rollout_strategy import parse_rollout

HASH = "h1"


def cluster(
    replicas: int = 2,
    *extra: dict[str, Any],
    zones: tuple[str, ...] = ("zone-a", "zone-b"),
    dep: dict[str, Any] | None = None,
) -> ClusterState:
    """A deployed Deployment `standin` (template hash `h1`), no pods yet."""
    dep = dep or deployment(replicas=replicas)
    s = ClusterState("default", make_nodes(list(zones), 1))
    s.bundle = bundle(dep, *extra)
    d = s.deployment
    d.name, d.manifest, d.template_hash, d.spec_replicas = "standin", dep, HASH, replicas
    d.templates[HASH] = parse_template(dep)
    d.rollout = parse_rollout(dep)
    return s


def add_pod(
    s: ClusterState,
    name: str,
    *,
    h: str = HASH,
    node: str | None = "local-zone-a-0",
    ready: bool = False,
    phase: str = "Running",
    created: float | None = None,
    ip: str | None = None,
) -> LocalPod:
    template = s.deployment.templates[h]
    p = LocalPod(
        name=name,
        namespace=s.namespace,
        labels={**template.labels, TEMPLATE_HASH: h},
        template=template,
        creation=time.time() if created is None else created,
    )
    p.node_name = node
    p.zone = next((n.zone for n in s.nodes if n.name == node), None)
    p.pod_ip = ip if ip is not None else (f"127.0.0.{len(s.pods) + 2}" if node else None)
    p.phase = phase if node else "Pending"
    p.ready = ready
    p.set_condition("Ready", "True" if ready else "False")
    s.pods[name] = p
    return p


class Deletions:
    """A delete_pod callback that marks the pod terminating, as the pod workers do."""

    def __init__(self, s: ClusterState) -> None:
        self.s = s
        self.calls: list[tuple[str, float | None]] = []

    def __call__(self, name: str, grace_s: float | None) -> None:
        self.calls.append((name, grace_s))
        self.s.pods[name].deletion = time.time()
