"""Node-level faults on one topology.kubernetes.io/zone: cordon, NoExecute taint, drain through
the Eviction API (PodDisruptionBudgets answer 429), exact restoration of what was changed, and
the plan of what a zone fault would touch (every pod of every namespace on the zone's nodes).

Node writes follow client-go's `retry.RetryOnConflict`: read the node fresh, compute the change
from that read, send it with that read's metadata.resourceVersion as a precondition, and on
409 Conflict read again and retry (bounded). Nodes change under us all the time (the kubelet
writes their status every few seconds), so a version read before an earlier write is stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from harness.backends.kube.api import KubeApi, KubeApiError, resource_path
from harness.backends.kube.convert import ZONE_LABEL

log = logging.getLogger("harness.backends.kube")
K8sObject = dict[str, Any]
OUTAGE_TAINT_KEY = "gauntlet.dev/zone-outage"
#: attempts of one node write on 409 Conflict (client-go's retry.DefaultRetry makes 5)
CONFLICT_ATTEMPTS = 5
ZoneOutageMode = Literal["evict", "taint", "drain"]


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


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, KubeApiError) and exc.status == 409


def update_node(
    api: KubeApi, name: str, change: Callable[[K8sObject], dict[str, Any] | None]
) -> K8sObject | None:
    """Read node `name`, merge-patch what `change(node)` returns (None: nothing to do) with the
    read's resourceVersion as precondition; on 409 read fresh and retry, at most
    CONFLICT_ATTEMPTS times with a short capped back-off. Returns the patched node, or None
    when there was nothing to do."""
    path = resource_path("v1", "Node", name=name)
    for attempt in Retrying(
        retry=retry_if_exception(_is_conflict),
        stop=stop_after_attempt(CONFLICT_ATTEMPTS),
        wait=wait_exponential(multiplier=0.01, exp_base=5, max=1.0) + wait_random(0, 0.01),
        reraise=True,
        before_sleep=lambda state: log.info(
            "node %s changed under us (409 Conflict, attempt %d): reading it again",
            name,
            state.attempt_number,
        ),
    ):
        with attempt:
            node = api.get(path)
            patch = change(node)
            if patch is None:
                return None
            return api.merge_patch(path, _with_rv(node, patch))
    return None  # unreachable: tenacity returns or re-raises


def _name(node: K8sObject | str) -> str:
    return node if isinstance(node, str) else str(node["metadata"]["name"])


def _without_ours(node: K8sObject) -> list[K8sObject]:
    return [
        t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != OUTAGE_TAINT_KEY
    ]


@dataclass
class NodeChanges:
    """What Gauntlet changed on nodes, so restore undoes exactly that and nothing else."""

    cordoned: set[str] = field(default_factory=set)
    tainted: set[str] = field(default_factory=set)

    def cordon(self, api: KubeApi, node: K8sObject | str) -> None:
        name = _name(node)

        def change(fresh: K8sObject) -> dict[str, Any] | None:
            if (fresh.get("spec") or {}).get("unschedulable"):
                return None  # already cordoned by someone else: leave it as we found it
            return {"spec": {"unschedulable": True}}

        if update_node(api, name, change) is not None:
            self.cordoned.add(name)

    def taint(self, api: KubeApi, node: K8sObject | str, value: str) -> None:
        name = _name(node)

        def change(fresh: K8sObject) -> dict[str, Any] | None:
            taints = (fresh.get("spec") or {}).get("taints") or []
            if any(t.get("key") == OUTAGE_TAINT_KEY for t in taints) and name not in self.tainted:
                return None  # someone else's outage taint: not ours to own or remove
            ours = {"key": OUTAGE_TAINT_KEY, "value": value, "effect": "NoExecute"}
            # a merge patch replaces the whole list: the precondition keeps others' taints
            return {"spec": {"taints": [*_without_ours(fresh), ours]}}

        if update_node(api, name, change) is not None:
            self.tainted.add(name)

    def restore(self, api: KubeApi, only: set[str] | None = None) -> list[str]:
        """Untaint and uncordon what we changed (optionally only some nodes), each node read
        fresh and retried on 409. Returns nodes touched; every node is tried before the first
        failure is raised, and a node that failed stays recorded for a later restore."""
        touched: list[str] = []
        failures: list[tuple[str, KubeApiError]] = []
        for name in sorted(self.tainted | self.cordoned):
            if only is not None and name not in only:
                continue
            untaint, uncordon = name in self.tainted, name in self.cordoned

            def change(
                fresh: K8sObject, untaint: bool = untaint, uncordon: bool = uncordon
            ) -> dict[str, Any] | None:
                spec: dict[str, Any] = {}
                taints = (fresh.get("spec") or {}).get("taints") or []
                if untaint and any(t.get("key") == OUTAGE_TAINT_KEY for t in taints):
                    spec["taints"] = _without_ours(fresh) or None
                if uncordon and (fresh.get("spec") or {}).get("unschedulable"):
                    spec["unschedulable"] = None
                return {"spec": spec} if spec else None

            try:
                update_node(api, name, change)
            except KubeApiError as exc:
                if exc.status != 404:
                    log.error("restoring node %s failed: %s", name, exc)
                    failures.append((name, exc))
                    continue
            self.tainted.discard(name)
            self.cordoned.discard(name)
            touched.append(name)
        if failures:
            raise failures[0][1]
        return touched


def _with_rv(obj: K8sObject, patch: dict[str, Any]) -> dict[str, Any]:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    if rv:
        patch = {**patch, "metadata": {"resourceVersion": rv}}  # optimistic concurrency
    return patch


# what a zone fault would touch ----------------------------------------------------------------
def outage_taint(zone: str) -> K8sObject:
    return {"key": OUTAGE_TAINT_KEY, "value": zone, "effect": "NoExecute"}


def tolerates(pod: K8sObject, taint: K8sObject) -> bool:
    """Whether a pod tolerates `taint` for good (upstream's Toleration.ToleratesTaint; a
    NoExecute toleration with tolerationSeconds only delays the eviction)."""
    for tol in (pod.get("spec") or {}).get("tolerations") or []:
        if tol.get("effect") not in (None, "", taint.get("effect")):
            continue
        op = tol.get("operator") or "Equal"
        key = tol.get("key") or ""
        if key and key != taint.get("key"):
            continue
        if not key and op != "Exists":
            continue
        if op == "Equal" and (tol.get("value") or "") != (taint.get("value") or ""):
            continue
        if tol.get("tolerationSeconds") is not None:
            continue
        return True
    return False


@dataclass
class PodImpact:
    namespace: str
    name: str
    node: str
    action: Literal["evict", "evicted by taint", "tolerates taint", "untouched"]

    @property
    def touched(self) -> bool:
        return self.action in ("evict", "evicted by taint")


@dataclass
class OutagePlan:
    """What a zone fault would do, read from the cluster without changing it."""

    zone: str
    mode: ZoneOutageMode
    namespace: str  # the run's own
    nodes: list[str]
    cordon: list[str]  # nodes not already unschedulable
    pods: list[PodImpact]

    @property
    def touched(self) -> list[PodImpact]:
        return [p for p in self.pods if p.touched]

    @property
    def other_tenants_touched(self) -> list[PodImpact]:
        return [p for p in self.touched if p.namespace != self.namespace]

    def lines(self) -> list[str]:
        how = {
            "taint": f"cordon + taint {OUTAGE_TAINT_KEY}={self.zone}:NoExecute",
            "evict": "cordon + evict the run's own pods (Eviction API)",
            "drain": "cordon + evict the run's own pods (Eviction API)",
        }[self.mode]
        out = [
            f"zone {self.zone}: {how}",
            f"nodes: {', '.join(self.nodes) or 'none'} "
            f"(to cordon: {', '.join(self.cordon) or 'none'})",
        ]
        out += [f"  {p.action:>16}  {p.namespace}/{p.name} on {p.node}" for p in self.pods]
        out.append(
            f"{len(self.touched)} pod(s) evicted, {len(self.other_tenants_touched)} of them "
            f"outside namespace {self.namespace}"
        )
        return out


def outage_plan(
    api: KubeApi, zone: str, nodes: list[K8sObject], namespace: str, mode: ZoneOutageMode
) -> OutagePlan:
    """Every pod of every namespace on the zone's nodes and what the fault does to it."""
    names = [_name(n) for n in nodes]
    taint = outage_taint(zone)
    impacts: list[PodImpact] = []
    for p in pods_on(api, names, None):
        meta = p.get("metadata") or {}
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        ns = str(meta.get("namespace") or "")
        action: Literal["evict", "evicted by taint", "tolerates taint", "untouched"]
        if mode == "taint":
            action = "tolerates taint" if tolerates(p, taint) else "evicted by taint"
        else:
            action = "evict" if ns == namespace else "untouched"
        impacts.append(PodImpact(ns, str(meta.get("name")), str(p["spec"]["nodeName"]), action))
    impacts.sort(key=lambda i: (i.namespace != namespace, i.namespace, i.node, i.name))
    return OutagePlan(
        zone=zone,
        mode=mode,
        namespace=namespace,
        nodes=names,
        cordon=[_name(n) for n in nodes if not (n.get("spec") or {}).get("unschedulable")],
        pods=impacts,
    )


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
