"""Item 10 of issue 18: the shipped ClusterRole and the SelfSubjectAccessReview preflight, against
the mock's role model (requests it does not allow answer 403 as the apiserver does)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_controllers import FakeControllers
from kube_mock import MockServer, RequestAttributes, RoleModel
from kube_objects import MakeBackend, bundle

from harness.backends.kube import rbac
from harness.backends.kube.api import KubeApiError

ROOT = Path(__file__).resolve().parents[3]
CLUSTER_ROLE = ROOT / "manifests" / "rbac" / "clusterrole.yaml"


def shipped_role() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CLUSTER_ROLE.read_text()) if d]
    roles = [d for d in docs if d.get("kind") == "ClusterRole"]
    assert len(roles) == 1, CLUSTER_ROLE
    return roles[0]


def role_without(*drop: tuple[str, str, str]) -> RoleModel:
    """The shipped ClusterRole less some (group, resource, verb)s."""
    role = copy.deepcopy(shipped_role())
    rules = []
    for rule in role["rules"]:
        for group, resource, verb in drop:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                rest = [r for r in rule["resources"] if r != resource]
                if rest:
                    rules.append({**rule, "resources": rest})
                verbs = [v for v in rule["verbs"] if v != verb]
                if verbs:
                    rules.append({**rule, "resources": [resource], "verbs": verbs})
                break
        else:
            rules.append(rule)
    return RoleModel(user="system:serviceaccount:gauntlet-system:gauntlet", cluster_rules=rules)


def _attrs(p: rbac.Permission, namespace: str = "gauntlet-x") -> RequestAttributes:
    return RequestAttributes(
        verb=p.verb,
        path="",
        resource_request=True,
        group=p.group,
        resource=p.resource,
        subresource=p.subresource,
        namespace=namespace if p.namespaced else "",
    )


def test_mock_refuses_what_the_role_lacks_with_the_apiservers_message(
    make_backend: MakeBackend, server: MockServer
) -> None:
    server.api.rbac = RoleModel(user="u", cluster_rules=[])
    b = make_backend()
    with pytest.raises(KubeApiError) as err:
        b.api.create(
            "/api/v1/namespaces/ns/pods/x/eviction",
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "x"}},
        )
    assert err.value.status == 403 and err.value.reason == "Forbidden"
    assert err.value.message == (
        'pods "x" is forbidden: User "u" cannot create resource "pods/eviction" '
        'in API group "" in the namespace "ns"'
    )
    with pytest.raises(KubeApiError) as err:
        b.api.merge_patch("/api/v1/nodes/n1", {"spec": {"unschedulable": True}})
    assert err.value.message == (
        'nodes "n1" is forbidden: User "u" cannot patch resource "nodes" in API group "" '
        "at the cluster scope"
    )


def test_preflight_names_every_missing_permission_and_creates_nothing(
    make_backend: MakeBackend, server: MockServer
) -> None:
    server.api.rbac = role_without(("", "pods/eviction", "create"), ("", "nodes", "patch"))
    b = make_backend(chaos_allowed=True)
    with pytest.raises(rbac.MissingPermissionsError) as err:
        b.deploy(bundle(replicas=1))
    text = str(err.value)
    assert "2 permission(s)" in text
    assert 'create pods/eviction (API group "")' in text
    assert 'patch nodes (API group "") cluster-wide' in text
    assert "manifests/rbac/" in text and "nothing was created" in text
    assert server.api.namespaces == {}  # nothing created
    assert server.api.forbidden == []  # and nothing even tried: only reviews were asked
    assert len(server.api.reviews) == len(rbac.required_permissions(bundle(replicas=1), True))


def test_chaos_verbs_are_asked_only_where_chaos_is_allowed(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    server.api.rbac = role_without(("", "pods/eviction", "create"), ("", "nodes", "patch"))
    b = make_backend(chaos_allowed=False)
    b.deploy(bundle(replicas=1))  # what it lacks is chaos only: the run may go on
    asked = {
        (r["resourceAttributes"]["resource"], r["resourceAttributes"].get("subresource", ""))
        for r in server.api.reviews
    }
    assert ("pods", "eviction") not in asked and ("pods", "log") in asked


def test_missing_optional_nodes_proxy_is_a_warning(
    make_backend: MakeBackend,
    server: MockServer,
    controllers: FakeControllers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controllers.start()
    server.api.rbac = role_without(("", "nodes/proxy", "get"))
    caplog.set_level(logging.WARNING, logger="harness.backends.kube")
    b = make_backend()
    b.deploy(bundle(replicas=1))
    assert "RBAC: not allowed to get nodes/proxy" in caplog.text


def test_preflight_goes_on_when_the_api_cannot_review(
    make_backend: MakeBackend,
    server: MockServer,
    controllers: FakeControllers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import aiohttp.web

    async def not_found(request: Any, match: Any) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404)

    server.api.route(r"^/apis/authorization\.k8s\.io/", not_found)
    controllers.start()
    caplog.set_level(logging.WARNING, logger="harness.backends.kube")
    b = make_backend()
    b.deploy(bundle(replicas=1))
    assert "RBAC preflight skipped" in caplog.text


def _manifest_kinds() -> list[dict[str, Any]]:
    """One object of each kind the shipped manifests apply into the run's namespace."""
    kinds: dict[str, str] = {}
    for path in (ROOT / "manifests").rglob("*.yaml"):
        if "rbac" in path.parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") and doc.get("apiVersion"):
                kinds.setdefault(str(doc["kind"]), str(doc["apiVersion"]))
    from harness.backends.kube.api import is_namespaced

    skip = {"Kustomization", "Cluster", "Namespace", "DestinationRule", "VirtualService"}
    # RBAC objects and APIServices are the kind metrics pipeline's, applied by kind, not by us
    return [
        {"kind": k, "apiVersion": v}
        for k, v in kinds.items()
        if k not in skip
        and is_namespaced(k)
        and not v.startswith(("rbac.authorization.k8s.io/", "apiregistration.k8s.io/"))
    ]


def test_shipped_clusterrole_grants_every_permission_the_preflight_asks() -> None:
    role = RoleModel.from_cluster_role(shipped_role())
    objects = [*bundle(replicas=1), *_manifest_kinds()]
    wanted = rbac.required_permissions(objects, chaos_allowed=True)
    missing = [p for p in wanted if not role.allows(_attrs(p))]
    assert missing == []
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "ScaledObject"}


def test_a_whole_run_under_the_shipped_clusterrole_meets_no_403(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    """Every request the backend sends (deploy, observe, metrics, scale, zone outage and restore,
    pod delete, rollout restart, teardown) is one the shipped ClusterRole allows."""
    controllers.start()
    server.api.rbac = RoleModel.from_cluster_role(shipped_role())
    b = make_backend()
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    b.pods()
    b.events()
    b.nodes()
    b.deployment()
    b.scale(3)
    assert b.zone_outage("zone-a").landed
    assert b.restore_zone("zone-a").landed
    b.wait_ready(timeout_s=20)
    assert b.delete_pod(b.pods()[0].name).landed
    b.rollout_restart(timeout_s=20)
    b.teardown()
    assert server.api.forbidden == []
    assert b.namespace in server.api.deleted_namespaces
