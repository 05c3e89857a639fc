"""The objects the kube backend tests deploy, and the mock cluster's context name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.backends.kube import KubeBackend
from harness.manifests.bundle import ManifestBundle

CTX = "mock-ctx"

# the `make_backend` fixture: KubeBackend(**options) against the mock server, torn down after
MakeBackend = Callable[..., KubeBackend]


def bundle(
    replicas: int = 3, hpa: bool = True, pdb_min_available: int | None = 2
) -> ManifestBundle:
    labels = {"app.kubernetes.io/name": "gauntlet-inference"}
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "gauntlet-inference", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "inference",
                                "image": "gauntlet-inference:dev",
                                "ports": [{"containerPort": 8000}],
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gauntlet-inference"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8000}]},
        },
    ]
    if hpa:
        objs.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "gauntlet-inference"},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "gauntlet-inference",
                    },
                    "minReplicas": replicas,
                    "maxReplicas": 6,
                },
            }
        )
    if pdb_min_available is not None:
        objs.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "gauntlet-inference"},
                "spec": {"minAvailable": pdb_min_available, "selector": {"matchLabels": labels}},
            }
        )
    return ManifestBundle(objs, source="test-bundle")


def api_client(server: Any) -> Any:
    """A kubernetes client for the mock API server (`kube_mock.MockServer`)."""
    from kubernetes import client

    return client.ApiClient(client.Configuration(host=server.url))
