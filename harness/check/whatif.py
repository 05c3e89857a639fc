"""What-if questions answered by the Kubernetes models in harness.models (kubelet probes,
topology spread, HPA), with the closed-form worst-case formulas of the kubelet/scheduler as a
fallback while a model is not importable (the result says which was used).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from harness.check.workload import probe


@dataclass(frozen=True)
class KillWindow:
    """When a container that needs `load_s` to come up is killed by a startup/liveness probe."""

    probe_kind: str | None  # startupProbe / livenessProbe / None (nothing can kill it)
    kill_earliest_s: float | None  # first possible kill signal after container start
    kill_latest_s: float | None  # certain kill by then (when the load is longer)
    killed_at_load: bool  # a container loading for load_s can be killed
    hang_detect_s: tuple[float, float] | None  # liveness detection window for a hang
    engine: str  # "harness.models.probes" or "closed form"


def _model(name: str) -> Any | None:
    try:
        return importlib.import_module(f"harness.models.{name}")
    except ImportError:
        return None


def probe_window(pod_spec: dict[str, Any], container: dict[str, Any], load_s: float) -> KillWindow:
    gate = "startupProbe" if probe(container, "startupProbe") else (
        "livenessProbe" if probe(container, "livenessProbe") else None)
    model = _model("probes")
    if model is not None and hasattr(model, "analyze"):
        a = model.analyze(pod_spec, container.get("name"), [load_s])
        hang = getattr(a, "hang_detect_s", None)
        return KillWindow(gate, a.kill_earliest_s, a.kill_latest_s,
                          bool(a.killed_fraction and a.killed_fraction > 0) or (
                              a.kill_earliest_s is not None and load_s > a.kill_earliest_s),
                          tuple(hang) if hang else None, "harness.models.probes")
    return _closed_form(container, gate, load_s)


def _closed_form(container: dict[str, Any], gate: str | None, load_s: float) -> KillWindow:
    """kubelet worker worst case (reference §2.4): kill in [D+(F-1)P, D+F*P+T] after start."""
    hang = None
    live = probe(container, "livenessProbe")
    if live:
        p, f, t = live["periodSeconds"], live["failureThreshold"], live["timeoutSeconds"]
        hang = (float((f - 1) * p), float(f * p + t))
    if gate is None:
        return KillWindow(None, None, None, False, hang, "closed form")
    g = probe(container, gate)
    assert g is not None
    d, p, f, t = (g["initialDelaySeconds"], g["periodSeconds"], g["failureThreshold"],
                  g["timeoutSeconds"])
    earliest = float(d + (f - 1) * p)
    latest = float(d + f * p + t)
    return KillWindow(gate, earliest, latest, load_s >= earliest, hang, "closed form")


@dataclass(frozen=True)
class ZoneLoss:
    stranded: int  # replicas that cannot be placed again after the zone is lost
    survivors: int  # replicas still running in the other zones right after the loss
    lost: int
    zone: str
    engine: str


def zone_loss(deployment: dict[str, Any], replicas: int, zones: list[str],
              nodes_per_zone: int) -> ZoneLoss:
    """Place `replicas` over the zones, lose the fullest zone, re-place its pods."""
    nodes = [
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": f"{z}-node-{n}",
                      "labels": {"topology.kubernetes.io/zone": z,
                                 "kubernetes.io/hostname": f"{z}-node-{n}"}},
         "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110",
                                    "nvidia.com/gpu": "8"}}}
        for z in zones for n in range(nodes_per_zone)
    ]
    model = _model("spread")
    if model is not None and hasattr(model, "zone_failure"):
        first = model.zone_failure(deployment, nodes, replicas, zones[0])
        per_zone = dict(first.before.per_zone or {})
        zone = max(zones, key=lambda z: per_zone.get(z, 0))
        r = first if zone == zones[0] else model.zone_failure(deployment, nodes, replicas, zone)
        survivors = sum(v for z, v in (r.before.per_zone or {}).items() if z != zone)
        return ZoneLoss(int(r.stranded), survivors, int((r.before.per_zone or {}).get(zone, 0)),
                        zone, "harness.models.spread")
    return _zone_loss_closed_form(deployment, replicas, zones)


def _zone_loss_closed_form(deployment: dict[str, Any], replicas: int,
                           zones: list[str]) -> ZoneLoss:
    tscs = [c for c in ((deployment.get("spec") or {}).get("template") or {}).get("spec", {})
            .get("topologySpreadConstraints") or []
            if c.get("topologyKey") == "topology.kubernetes.io/zone"]
    hard = [c for c in tscs if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"]
    n = len(zones)
    if not tscs:
        # Nothing keeps them apart: the worst (allowed) placement is all in one zone.
        return ZoneLoss(0, 0, replicas, zones[0], "closed form")
    lost = math.ceil(replicas / n)
    survivors = replicas - lost
    stranded = 0
    if hard and any(c.get("nodeTaintsPolicy", "Ignore") != "Honor" for c in hard):
        # The dead zone still counts with 0 pods: globalMin 0, each live zone may hold at most
        # maxSkew pods; survivors already fill that.
        max_skew = min(int(c.get("maxSkew", 1)) for c in hard)
        room = sum(max(0, max_skew - math.ceil(survivors / max(n - 1, 1))) for _ in range(n - 1))
        stranded = max(0, lost - room)
    return ZoneLoss(stranded, survivors, lost, "fullest zone", "closed form")
