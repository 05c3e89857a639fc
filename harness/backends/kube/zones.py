"""Node-level faults on one topology.kubernetes.io/zone: cordon, NoExecute taint, drain through
the Eviction API (PodDisruptionBudgets answer 429), and exact restoration of what was changed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from harness.backends.kube.api import KubeApi, KubeApiError, resource_path
from harness.backends.kube.convert import ZONE_LABEL

log = logging.getLogger("harness.backends.kube")
K8sObject = dict[str, Any]
OUTAGE_TAINT_KEY = "gauntlet.dev/zone-outage"


def zone_nodes(api: KubeApi, zone: str) -> list[K8sObject]:
    items = api.list(resource_path("v1", "Node"), label_selector=f"{ZONE_LABEL}={zone}")
    # filter here too: the selector is a request, a conformant answer is checked not assumed
    return [
        n for n in items if ((n.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL) == zone
    ]


def pods_on(api: KubeApi, nodes: list[str], namespace: str | None) -> list[K8sObject]:
    out: list[K8sObject] = []
    for n in nodes:
        items = api.list(resource_path("v1", "Pod", namespace), field_selector=f"spec.nodeName={n}")
        out.extend(p for p in items if (p.get("spec") or {}).get("nodeName") == n)
    return out


@dataclass
class NodeChanges:
    """What Gauntlet changed on nodes, so restore undoes exactly that and nothing else."""

    cordoned: set[str] = field(default_factory=set)
    tainted: set[str] = field(default_factory=set)

    def cordon(self, api: KubeApi, node: K8sObject) -> None:
        name = node["metadata"]["name"]
        if (node.get("spec") or {}).get("unschedulable"):
            return  # already cordoned by someone else: leave it as we found it
        api.merge_patch(resource_path("v1", "Node", name=name), {"spec": {"unschedulable": True}})
        self.cordoned.add(name)

    def taint(self, api: KubeApi, node: K8sObject, value: str) -> None:
        name = node["metadata"]["name"]
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("key") != OUTAGE_TAINT_KEY
        ]
        taints.append({"key": OUTAGE_TAINT_KEY, "value": value, "effect": "NoExecute"})
        api.merge_patch(
            resource_path("v1", "Node", name=name), _with_rv(node, {"spec": {"taints": taints}})
        )
        self.tainted.add(name)

    def restore(self, api: KubeApi, only: set[str] | None = None) -> list[str]:
        """Untaint and uncordon what we changed (optionally only some nodes). Returns nodes
        touched."""
        touched: list[str] = []
        for name in sorted(self.tainted | self.cordoned):
            if only is not None and name not in only:
                continue
            try:
                node = api.get(resource_path("v1", "Node", name=name))
            except KubeApiError as exc:
                if exc.status == 404:
                    self.tainted.discard(name)
                    self.cordoned.discard(name)
                    continue
                raise
            patch: dict[str, Any] = {"spec": {}}
            if name in self.tainted:
                taints = [
                    t
                    for t in (node.get("spec") or {}).get("taints") or []
                    if t.get("key") != OUTAGE_TAINT_KEY
                ]
                patch["spec"]["taints"] = taints or None
            if name in self.cordoned:
                patch["spec"]["unschedulable"] = None
            api.merge_patch(resource_path("v1", "Node", name=name), _with_rv(node, patch))
            self.tainted.discard(name)
            self.cordoned.discard(name)
            touched.append(name)
        return touched


def _with_rv(obj: K8sObject, patch: dict[str, Any]) -> dict[str, Any]:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    if rv:
        patch = {**patch, "metadata": {"resourceVersion": rv}}  # optimistic concurrency
    return patch


@dataclass
class EvictionOutcome:
    evicted: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)  # pod -> last 429 message
    failed: dict[str, str] = field(default_factory=dict)  # pod -> non-retryable error
    attempts_429: int = 0


def evict(api: KubeApi, pod: K8sObject) -> tuple[int, str]:
    """POST pods/<name>/eviction. Returns (HTTP status, message): 200/201 ok, 429 PDB, 404 gone."""
    meta = pod["metadata"]
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }
    try:
        api.create(resource_path("v1", "Pod", meta["namespace"], meta["name"], "eviction"), body)
        return 201, ""
    except KubeApiError as exc:
        return exc.status, exc.message or exc.reason


def drain(
    api: KubeApi, pods: list[K8sObject], timeout_s: float, retry_s: float = 5.0
) -> EvictionOutcome:
    """Evict every pod, retrying 429 (disruption budget) every `retry_s` like `kubectl drain`."""
    out = EvictionOutcome()
    remaining = {p["metadata"]["name"]: p for p in pods}
    deadline = time.monotonic() + timeout_s
    while remaining:
        for name, pod in list(remaining.items()):
            status, message = evict(api, pod)
            if status in (200, 201, 404):
                out.evicted.append(name)
                out.blocked.pop(name, None)
                del remaining[name]
            elif status == 429:
                out.attempts_429 += 1
                out.blocked[name] = message
                log.warning(
                    "eviction of %s blocked (429, will retry after %.0fs): %s",
                    name,
                    retry_s,
                    message,
                )
            else:
                out.failed[name] = f"{status}: {message}"
                del remaining[name]
        if not remaining or time.monotonic() + retry_s > deadline:
            break
        time.sleep(retry_s)
    return out
