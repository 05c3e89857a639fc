"""Raw JSON access to the Kubernetes REST API through the official client's ApiClient.

Objects stay plain dicts with Kubernetes' own field names (what the observation models use),
so an odd-but-valid server answer never breaks on the generated models' strict validation.
Auth, TLS and proxies are the official client's (kubeconfig or in-cluster).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

K8sObject = dict[str, Any]

#: kind -> (apiVersion prefix path, plural, namespaced) for the kinds Gauntlet applies or reads.
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "Pod": ("pods", True),
    "Service": ("services", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "ServiceAccount": ("serviceaccounts", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "Event": ("events", True),
    "Endpoints": ("endpoints", True),
    "Deployment": ("deployments", True),
    "StatefulSet": ("statefulsets", True),
    "ReplicaSet": ("replicasets", True),
    "DaemonSet": ("daemonsets", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "NetworkPolicy": ("networkpolicies", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "EndpointSlice": ("endpointslices", True),
    "PodMetrics": ("pods", True),  # metrics.k8s.io
}


class KubeApiError(Exception):
    """An API call failed: HTTP status plus the Status reason/message the server gave."""

    def __init__(
        self, status: int, reason: str, message: str, method: str = "", path: str = ""
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: {status} {reason}: {message}".strip())


def resource_path(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """REST path of a collection or object, e.g.
    /apis/apps/v1/namespaces/ns/deployments/x/status."""
    plural, namespaced = KINDS.get(kind, (kind.lower() + "s", True))
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{plural}"
    if name:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path


def is_namespaced(kind: str) -> bool:
    return KINDS.get(kind, ("", True))[1]


@dataclass
class KubeApi:
    """Thin verbs over ApiClient.call_api; every answer is JSON decoded into a dict."""

    api_client: client.ApiClient
    timeout_s: float = 30.0

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> K8sObject:
        data = self._call(method, path, query=query, body=body, content_type=content_type)
        return json.loads(data) if data else {}

    def get_text(self, path: str, **query: Any) -> str:
        """A non-JSON GET, e.g. a node's metrics through the API server proxy, a pod's log."""
        return self._call("GET", path, query=query, accept="text/plain").decode(errors="replace")

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> bytes:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        serialized = self.api_client.param_serialize(
            method,
            path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api_client.call_api(*serialized, _request_timeout=self.timeout_s)
            resp.read()
        except ApiException as exc:  # transport-level failures the client already classified
            raise _error_from(exc.status or 0, exc.reason or "", exc.body, method, path) from None
        if resp.status >= 400:
            raise _error_from(resp.status, resp.reason or "", resp.data, method, path)
        return bytes(resp.data or b"")

    # verbs -----------------------------------------------------------------------------------
    def get(self, path: str, **query: Any) -> K8sObject:
        return self.request("GET", path, query=query)

    def list(
        self, path: str, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[K8sObject]:
        out = self.request(
            "GET", path, query={"labelSelector": label_selector, "fieldSelector": field_selector}
        )
        return list(out.get("items") or [])

    def create(self, path: str, body: K8sObject) -> K8sObject:
        return self.request("POST", path, body=body)

    def merge_patch(self, path: str, body: K8sObject) -> K8sObject:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def delete(self, path: str, **query: Any) -> K8sObject:
        return self.request("DELETE", path, query=query)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
            return True
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise


def _error_from(status: int, reason: str, data: Any, method: str, path: str) -> KubeApiError:
    message = ""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str) and data:
        try:
            status_obj = json.loads(data)
            reason = str(status_obj.get("reason") or reason)
            message = str(status_obj.get("message") or "")
        except ValueError:
            message = data[:300]
    return KubeApiError(status, reason, message, method, path)


# configuration ---------------------------------------------------------------------------------
IN_CLUSTER = "in-cluster"


def kubeconfig_contexts(kubeconfig: str | None) -> tuple[list[str], str | None]:
    """(context names, current context) of a kubeconfig ($KUBECONFIG / ~/.kube/config if None)."""
    contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    return [c["name"] for c in contexts], (current or {}).get("name")


def api_client_for(context: str, kubeconfig: str | None) -> client.ApiClient:
    """A private ApiClient for one context; never touches the client's global default config."""
    if context == IN_CLUSTER:
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        return client.ApiClient(cfg)
    return config.new_client_from_config(config_file=kubeconfig, context=context)


#: every namespace a run creates carries its run id (teardown and the hang's Pod Security
#: relabel find the run's own by it)
RUN_ID_LABEL = "gauntlet.dev/run-id"


def run_namespace(name: str, run_id: str) -> dict[str, Any]:
    """The Namespace object of a run (its own, or its load generator's)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {RUN_ID_LABEL: run_id, "app.kubernetes.io/managed-by": "gauntlet"},
        },
    }
