"""Pod specs for the stand-in server (standin_server.py) and the Service around them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.manifests.bundle import ManifestBundle

SERVER = str(Path(__file__).with_name("standin_server.py"))


def deployment(
    replicas: int = 1,
    load_s: float = 0.0,
    alloc_mb: int = 0,
    memory_limit: str | None = None,
    probes: dict[str, Any] | None = None,
    spread: bool = False,
    grace: int = 2,
    work_ms: float = 0.0,
    cpu_request: str = "100m",
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "server",
        "image": "standin:dev",
        "command": [sys.executable, SERVER],
        "env": [
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PORT", "value": "8000"},
            {"name": "LOAD_S", "value": str(load_s)},
            {"name": "ALLOC_MB", "value": str(alloc_mb)},
            {"name": "WORK_MS", "value": str(work_ms)},
        ],
        "ports": [{"name": "http", "containerPort": 8000}],
        "resources": {"requests": {"cpu": cpu_request}, "limits": {}},
    }
    if memory_limit:
        container["resources"]["limits"]["memory"] = memory_limit
    container.update(
        probes
        if probes is not None
        else {"readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1}}
    )
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": grace}
    if spread:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "standin"}},
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "standin"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "standin"}},
            "template": {"metadata": {"labels": {"app": "standin"}}, "spec": spec},
        },
    }


def bundle(dep: dict[str, Any], *extra: dict[str, Any]) -> ManifestBundle:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "standin"},
        "spec": {"selector": {"app": "standin"}, "ports": [{"port": 0, "targetPort": "http"}]},
    }
    return ManifestBundle([dep, svc, *extra], source="test")
