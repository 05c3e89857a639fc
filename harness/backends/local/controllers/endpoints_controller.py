"""The EndpointSlice controller: the Service routes only to serving (Ready, not terminating) pods.

Run on every pod change (not only on the controller manager's loop), so a pod that stops
being Ready stops getting new requests at once.
"""

from __future__ import annotations

from typing import Any

from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.podspec.pod_template import ContainerSpec

DEFAULT_PORT = 8000


class EndpointsController:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.target_port = 0  # the Service's targetPort, resolved at deploy

    def resolve_service(self, service: dict[str, Any] | None, container: ContainerSpec) -> int:
        """Set targetPort from the Service's first port (a number or a named containerPort), else
        the container's first port; returns the Service's port (0: none, any port will do)."""
        ports = ((service or {}).get("spec") or {}).get("ports") or []
        target = 0
        if ports:
            port = ports[0].get("targetPort", ports[0].get("port"))
            target = (
                port
                if isinstance(port, int)
                else container.ports.get(str(port), int(port) if str(port).isdigit() else 0)
            )
        self.target_port = target or container.first_port or DEFAULT_PORT
        return int(ports[0].get("port", 0)) if ports else 0

    def sync(self) -> None:
        s = self.state
        with s.lock:
            s.endpoints = [
                (p.name, p.pod_ip or "", self.target_port)
                for p in s.pods.values()
                if p.serving and p.pod_ip
            ]
