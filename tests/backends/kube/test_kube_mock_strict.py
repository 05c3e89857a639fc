"""Issue 18, "the mock must catch these": the mock API server's strictness, checked over HTTP
with the same client the backend uses (resourceVersion preconditions, APIService availability,
RBAC and SelfSubjectAccessReview)."""

from __future__ import annotations

from typing import Any

import pytest
from kube_mock import CONFLICT_MESSAGE, MockServer, RoleModel, request_attributes
from kubernetes import client

from harness.backends.kube.api import KubeApi, KubeApiError

NODE = "/api/v1/nodes/node-zone-a-0"
METRICS = "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods"


@pytest.fixture()
def api(server: MockServer) -> KubeApi:
    return KubeApi(client.ApiClient(client.Configuration(host=server.url)))


def _rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def test_every_write_makes_a_new_resource_version(api: KubeApi, server: MockServer) -> None:
    first = _rv(api.get(NODE))
    patched = api.merge_patch(NODE, {"metadata": {"labels": {"a": "1"}}})
    assert _rv(patched) > first and _rv(api.get(NODE)) == _rv(patched)
    server.call(
        lambda: server.api.put("Node", {"metadata": {"name": "node-zone-a-0"}, "status": {}})
    )
    assert _rv(api.get(NODE)) > _rv(patched)  # another client's write counts too
    created = api.create(
        "/api/v1/namespaces/ns/services",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
    )
    assert _rv(created) > _rv(patched)


def test_a_stale_resource_version_is_a_409_conflict(api: KubeApi, server: MockServer) -> None:
    node = api.get(NODE)
    stale = node["metadata"]["resourceVersion"]
    api.merge_patch(NODE, {"spec": {"unschedulable": True}})  # unconditional: always lands
    for send in (
        lambda body: api.merge_patch(NODE, body),
        lambda body: api.request("PUT", NODE, body={**node, **body}),
    ):
        with pytest.raises(KubeApiError) as err:
            send({"metadata": {"resourceVersion": stale}, "spec": {"taints": []}})
        assert err.value.status == 409 and err.value.reason == "Conflict"
        assert err.value.message == (
            f'Operation cannot be fulfilled on nodes "node-zone-a-0": {CONFLICT_MESSAGE}'
        )
    fresh = api.get(NODE)
    assert fresh["spec"] == {"unschedulable": True}  # neither refused write landed
    ok = api.merge_patch(
        NODE, {"metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]}}
    )
    assert _rv(ok) > _rv(fresh)


def test_put_replaces_and_keeps_system_fields(api: KubeApi) -> None:
    node = api.get(NODE)
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-zone-a-0"}}
    out = api.request("PUT", NODE, body=body)
    assert "spec" not in out and "labels" not in out["metadata"]
    assert out["metadata"]["uid"] == node["metadata"]["uid"]


def test_deployment_generation_moves_with_its_spec_only(api: KubeApi) -> None:
    path = "/apis/apps/v1/namespaces/ns/deployments"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    dep["spec"] = {"replicas": 1}
    assert api.create(path, dep)["metadata"]["generation"] == 1
    assert api.merge_patch(path + "/d", {"spec": {"replicas": 1}})["metadata"]["generation"] == 1
    assert (
        api.merge_patch(path + "/d/scale", {"spec": {"replicas": 2}})["metadata"]["generation"] == 2
    )
    assert (
        api.merge_patch(path + "/d", {"metadata": {"labels": {"x": "y"}}})["metadata"]["generation"]
        == 2
    )


def _apiservice(name: str, available: bool) -> dict[str, Any]:
    group = name.split(".", 1)[1]
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name},
        "spec": {"group": group, "version": name.split(".", 1)[0]},
        "status": {
            "conditions": [{"type": "Available", "status": "True" if available else "False"}]
        },
    }


def test_aggregated_apis_follow_their_apiservice(api: KubeApi, server: MockServer) -> None:
    with pytest.raises(KubeApiError) as err:
        api.list(METRICS)
    assert err.value.status == 404  # nothing registers metrics.k8s.io
    server.call(lambda: server.api.put("APIService", _apiservice("v1beta1.metrics.k8s.io", False)))
    got = api.get("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io")
    assert got["status"]["conditions"][0]["status"] == "False"
    with pytest.raises(KubeApiError) as err:
        api.list(METRICS)
    assert err.value.status == 503 and "service unavailable" in err.value.message
    server.call(lambda: server.api.put("APIService", _apiservice("v1beta1.metrics.k8s.io", True)))
    assert api.list(METRICS) == []
    server.call(
        lambda: server.api.put("APIService", _apiservice("v1beta1.custom.metrics.k8s.io", False))
    )
    with pytest.raises(KubeApiError) as err:
        api.get("/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/%2A/queue_depth")
    assert err.value.status == 503
    with pytest.raises(KubeApiError) as err:  # no APIService for external metrics
        api.get("/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/queue_depth")
    assert err.value.status == 404


def test_legacy_metrics_switch_still_serves(api: KubeApi, server: MockServer) -> None:
    server.api.metrics = True
    assert api.list(METRICS) == []


def _review(api: KubeApi, **attrs: str) -> bool:
    out = api.create(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        },
    )
    return bool(out["status"]["allowed"])


def test_self_subject_access_review_follows_the_role_model(
    api: KubeApi, server: MockServer
) -> None:
    assert _review(api, verb="patch", resource="nodes")  # no model: everything allowed
    server.api.rbac = RoleModel(
        cluster_rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        namespace_rules={
            "ns": [{"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]
        },
    )
    assert _review(api, verb="list", resource="pods", namespace="any")
    assert not _review(api, verb="delete", resource="pods", namespace="any")
    assert _review(api, verb="create", resource="pods", subresource="eviction", namespace="ns")
    assert not _review(
        api, verb="create", resource="pods", subresource="eviction", namespace="other"
    )
    # the same model refuses the request itself, and allows what it grants
    assert api.list("/api/v1/namespaces/any/pods") == []
    with pytest.raises(KubeApiError) as err:
        api.list("/api/v1/nodes")
    assert err.value.status == 403
    assert err.value.message == (
        'nodes is forbidden: User "gauntlet" cannot list resource "nodes" in API group "" '
        "at the cluster scope"
    )


def test_request_attributes_are_the_apiservers() -> None:
    a = request_attributes("GET", "/api/v1/namespaces/ns", {})
    assert (a.verb, a.resource, a.name, a.namespace) == ("get", "namespaces", "ns", "ns")
    a = request_attributes("POST", "/api/v1/namespaces/ns/pods/p/eviction", {})
    assert (a.verb, a.resource, a.subresource, a.name) == ("create", "pods", "eviction", "p")
    a = request_attributes("GET", "/apis/apps/v1/namespaces/ns/deployments", {"watch": "true"})
    assert (a.verb, a.group) == ("watch", "apps")
    a = request_attributes("DELETE", "/apis/batch/v1/namespaces/ns/jobs", {})
    assert a.verb == "deletecollection"
    assert not request_attributes("GET", "/apis/apps/v1", {}).resource_request


def test_concurrent_writes_follow_a_read(api: KubeApi, server: MockServer) -> None:
    server.api.concurrent_writes[("Node", "node-zone-a-0")] = 1
    seen = api.get(NODE)
    assert _rv(api.get(NODE)) > _rv(seen)  # the heartbeat landed between the two reads
    assert _rv(api.get(NODE)) == _rv(api.get(NODE))  # and only once
