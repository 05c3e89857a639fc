"""RBAC preflight: before deploy() creates anything, ask the API server (SelfSubjectAccessReview)
whether this identity may do everything the run will do, and fail once, naming every missing
permission and the shipped ClusterRole (manifests/rbac/) that grants them.

The list is derived from the calls the kube backend makes (backend, recorder, faults, zones,
hang, load_job, kubectl port-forward); `required_permissions` is the single source, and a test
checks that manifests/rbac/clusterrole.yaml grants every entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from harness.backends.base import BackendError
from harness.backends.kube.api import KINDS, KubeApi, KubeApiError
from harness.errors import SetupError

log = logging.getLogger("harness.backends.kube")
RBAC_DIR = "manifests/rbac/"
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass(frozen=True)
class Permission:
    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespaced: bool = True
    optional: bool = False  # missing: a warning (what is lost), not an error
    why: str = ""

    def describe(self, namespace: str) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f"in namespace {namespace}" if self.namespaced else "cluster-wide"
        return f'{self.verb} {res} (API group "{self.group}") {where}: {self.why}'


def _p(
    verbs: str,
    group: str,
    resource: str,
    sub: str = "",
    *,
    namespaced: bool = True,
    optional: bool = False,
    why: str,
) -> list[Permission]:
    return [Permission(v, group, resource, sub, namespaced, optional, why) for v in verbs.split()]


#: every run (observation, deploy, teardown, load through the Service, probes)
BASE: list[Permission] = [
    *_p("create", "authorization.k8s.io", "selfsubjectaccessreviews", namespaced=False,
        why="this preflight"),
    *_p("create get delete", "", "namespaces", namespaced=False,
        why="the run's own namespace (created, read, deleted at teardown)"),
    *_p("get list", "", "pods", why="pods, their conditions and nodes"),
    *_p("delete", "", "pods", why="ending the in-cluster load Job's pod"),
    *_p("get", "", "pods", "log", why="pod logs, the load Job's results"),
    *_p("create get", "", "pods", "portforward", why="kubectl port-forward for targeted probes"),
    *_p("list", "", "events", why="scheduling, probe and OOM events"),
    *_p("get list", "", "nodes", namespaced=False, why="zones and allocatable of nodes"),
    *_p("get", "apps", "deployments", why="rollout status"),
    *_p("patch", "apps", "deployments", "scale", why="scaling the Deployment"),
    *_p("create get delete", "batch", "jobs", why="the in-cluster load generator Job"),
    *_p("list", "metrics.k8s.io", "pods", why="CPU/memory samples (metrics-server)"),
    *_p("get", "", "nodes", "proxy", namespaced=False, optional=True,
        why="CPU throttling counters from cAdvisor (without: no throttling figures)"),
]  # fmt: skip

#: only when chaos is allowed on the context
CHAOS: list[Permission] = [
    *_p("delete", "", "pods", why="kill a replica"),
    *_p("create", "", "pods", "eviction", why="zone outage / drain through the Eviction API"),
    *_p("patch", "", "nodes", namespaced=False, why="cordon, taint and restore a zone's nodes"),
    *_p("patch", "apps", "deployments", why="rollout restart"),
    *_p("create", "", "pods", why="the hang's hostPID helper pod on the target's node"),
    *_p("patch", "", "namespaces", namespaced=False,
        why="labelling the run's namespace Pod Security privileged for that helper pod"),
]  # fmt: skip


def _group_resource(api_version: str, kind: str) -> tuple[str, str]:
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    plural = KINDS.get(kind, (kind.lower() + "s", True))[0]
    return group, plural


def required_permissions(
    objects: Iterable[dict[str, object]], chaos_allowed: bool
) -> list[Permission]:
    """What a run applying `objects` needs (create on each kind it applies), in order, without
    duplicates; chaos verbs only when chaos is allowed."""
    applied: list[Permission] = []
    for obj in objects:
        group, plural = _group_resource(str(obj.get("apiVersion")), str(obj.get("kind")))
        applied += _p("create", group, plural, why=f"applying the manifests' {obj.get('kind')}")
    out = [*BASE, *applied, *(CHAOS if chaos_allowed else [])]
    seen: set[tuple[str, str, str, str]] = set()
    unique: list[Permission] = []
    for p in out:
        key = (p.verb, p.group, p.resource, p.subresource)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


class MissingPermissionsError(SetupError, BackendError):
    """The identity lacks permissions the run needs; nothing was created."""


def allowed(api: KubeApi, perm: Permission, namespace: str) -> bool:
    """One SelfSubjectAccessReview."""
    attrs: dict[str, str] = {"verb": perm.verb, "group": perm.group, "resource": perm.resource}
    if perm.subresource:
        attrs["subresource"] = perm.subresource
    if perm.namespaced:
        attrs["namespace"] = namespace
    review = api.create(
        SSAR_PATH,
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        },
    )
    return bool((review.get("status") or {}).get("allowed"))


def preflight(api: KubeApi, permissions: list[Permission], namespace: str, context: str) -> None:
    """Ask for each permission; raise one MissingPermissionsError naming every missing required
    one, warn for missing optional ones. If the API cannot answer reviews at all, warn and go
    on (the run then meets any refusal as it happens)."""
    missing: list[Permission] = []
    for perm in permissions:
        try:
            ok = allowed(api, perm, namespace)
        except KubeApiError as exc:
            log.warning(
                "RBAC preflight skipped: SelfSubjectAccessReview failed on context %s (%s)",
                context,
                exc,
            )
            return
        if not ok:
            missing.append(perm)
    for perm in (p for p in missing if p.optional):
        log.warning("RBAC: not allowed to %s", perm.describe(namespace))
    required = [p for p in missing if not p.optional]
    if required:
        lines = "\n".join(f"  - {p.describe(namespace)}" for p in required)
        raise MissingPermissionsError(
            f"kube context {context!r} lacks {len(required)} permission(s) the run needs "
            f"(nothing was created):\n{lines}\n"
            f"fix: bind the ClusterRole in {RBAC_DIR}clusterrole.yaml to this identity "
            f"(example binding: {RBAC_DIR}binding.yaml), or ask your cluster admin to"
        )
