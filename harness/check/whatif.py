"""What-if questions answered by the Kubernetes models in harness.models: when a slow-loading
container is killed by its probes (harness.models.prober) and what a zone loss strands
(harness.models.scheduler). Each answer names the model module it came from (`engine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.check.workload import probe
from harness.models.prober import analyze
from harness.models.scheduler.placement import zone_failure

PROBER = analyze.__module__  # "harness.models.prober"
PLACEMENT = zone_failure.__module__  # "harness.models.scheduler.placement"


@dataclass(frozen=True)
class KillWindow:
    """When a container that needs `load_s` to come up is killed by a startup/liveness probe."""

    probe_kind: str | None  # startupProbe / livenessProbe / None (nothing can kill it)
    kill_earliest_s: float | None  # first possible kill signal after container start
    kill_latest_s: float | None  # certain kill by then (when the load is longer)
    killed_at_load: bool  # a container loading for load_s can be killed
    hang_detect_s: tuple[float, float] | None  # liveness detection window for a hang
    engine: str  # the model module: "harness.models.prober"


def probe_window(pod_spec: dict[str, Any], container: dict[str, Any], load_s: float) -> KillWindow:
    gate = (
        "startupProbe"
        if probe(container, "startupProbe")
        else ("livenessProbe" if probe(container, "livenessProbe") else None)
    )
    a = analyze(pod_spec, container.get("name"), [load_s])
    return KillWindow(
        gate,
        a.kill_earliest_s,
        a.kill_latest_s,
        bool(a.killed_fraction and a.killed_fraction > 0)
        or (a.kill_earliest_s is not None and load_s > a.kill_earliest_s),
        a.hang_detect_s,
        PROBER,
    )


@dataclass(frozen=True)
class ZoneLoss:
    stranded: int  # replicas that cannot be placed again after the zone is lost
    survivors: int  # replicas still running in the other zones right after the loss
    lost: int
    zone: str
    engine: str  # the model module: "harness.models.scheduler.placement"


def zone_loss(
    deployment: dict[str, Any], replicas: int, zones: list[str], nodes_per_zone: int
) -> ZoneLoss:
    """Place `replicas` over the zones, lose the fullest zone, re-place its pods."""
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"{z}-node-{n}",
                "labels": {
                    "topology.kubernetes.io/zone": z,
                    "kubernetes.io/hostname": f"{z}-node-{n}",
                },
            },
            "status": {
                "allocatable": {
                    "cpu": "64",
                    "memory": "512Gi",
                    "pods": "110",
                    "nvidia.com/gpu": "8",
                }
            },
        }
        for z in zones
        for n in range(nodes_per_zone)
    ]
    first = zone_failure(deployment, nodes, replicas, zones[0])
    per_zone = first.before.per_zone
    zone = max(zones, key=lambda z: per_zone.get(z, 0))
    r = first if zone == zones[0] else zone_failure(deployment, nodes, replicas, zone)
    survivors = sum(v for z, v in r.before.per_zone.items() if z != zone)
    return ZoneLoss(r.stranded, survivors, r.before.per_zone.get(zone, 0), zone, PLACEMENT)
