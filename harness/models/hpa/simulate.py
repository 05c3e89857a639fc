"""HPA sync-loop simulator: a traffic profile against a per-replica capacity and a cold start.

No upstream counterpart: it drives HPAController (controller.py) the way the controller's
--horizontal-pod-autoscaler-sync-period loop does, with pods and metrics made up from the load.

Load signal (what the simulated metrics report), per sync at time t:
* traffic reaches only Ready replicas (EndpointSlices), split evenly: each Ready replica carries
  `f = rps / (ready * capacity_per_replica)` of its capacity;
* Resource / ContainerResource metrics: usage = f x the container request (`pod_requests`), i.e.
  a replica at full capacity uses 100 % of its request (optionally capped by `max_load_fraction`);
* Pods metrics: value = f x `metric_at_capacity[name]` (default: capacity_per_replica, so the
  metric reads as "requests per second per pod");
* Object / External metrics: value = rps / capacity_per_replica x `metric_at_capacity[name]`
  (the total load, in the same unit);
* queue metrics (`queue_metrics`, a Pods metric such as vllm:num_requests_waiting, or an
  Object / External total): requests waiting, not load. A fluid queue: requests arriving beyond
  the Ready replicas' capacity wait, a backlog that grows at `rps - ready x capacity` and drains
  when the load falls below it, capped at `ready x bound` (a server's queue limit, past which it
  rejects; None: unbounded). A Ready replica reports backlog / ready (Pods), the Object /
  External metric the whole backlog. Below capacity nothing waits: such a metric stays 0 until
  the load passes `capacity_per_replica`, whatever its target. The capacity is where requests
  start to wait, an assumption when it is an SLO capacity (the server's batch may still take
  more);
* a replica that is still cold-starting is Running with Ready=False and reports 0 usage (or is
  Pending with no metrics when `cold_pod_phase="Pending"`); it becomes Ready `cold_start_s`
  after the scale-up that created it. Scale-down removes unready pods first, then the newest.
Metrics are instantaneous (timestamp = the sync, window 15 s): metrics-server lag is not modelled.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.models._k8s import ModelInputError, dig, to_milli
from harness.models.hpa.controller import HPAController


@dataclass
class SimResult:
    timeline: list[dict]
    first_scale_up_s: float | None
    max_replicas: int
    breach_seconds: float
    needed_replicas: int
    hpa_max_replicas: int = 0
    decisions: list[dict] = field(default_factory=list)
    syncs: int = 0
    pods_evaluated: int = 0

    @property
    def max_replicas_sufficient(self) -> bool:
        return self.hpa_max_replicas >= self.needed_replicas

    def to_dict(self) -> dict[str, Any]:
        return {
            "firstScaleUpSeconds": self.first_scale_up_s,
            "maxReplicasReached": self.max_replicas,
            "breachSeconds": self.breach_seconds,
            "neededReplicas": self.needed_replicas,
            "hpaMaxReplicas": self.hpa_max_replicas,
            "maxReplicasSufficient": self.max_replicas_sufficient,
            "syncs": self.syncs,
            "decisions": self.decisions,
            "timeline": self.timeline,
        }


@dataclass
class _SimPod:
    name: str
    created: float
    ready_at: float


def _rps_at(times: list[float], levels: list[float], t: float) -> float:
    i = bisect.bisect_right(times, t) - 1
    return levels[i] if i >= 0 else 0.0


def simulate(
    hpa: dict,
    *,
    traffic: list[tuple[float, float]],
    capacity_per_replica: float,
    cold_start_s: float,
    duration_s: float,
    initial_replicas: int | None = None,
    sync_period_s: float = 15.0,
    pod_requests: dict[str, str] | None = None,
    metric_at_capacity: dict[str, float] | None = None,
    max_load_fraction: float | None = None,
    cold_pod_phase: str = "Running",
    queue_metrics: Mapping[str, float | None] | None = None,
    **controller_kw: Any,
) -> SimResult:
    """Run the HPA every `sync_period_s` from t=0 to `duration_s` (inclusive); see module doc."""
    if capacity_per_replica <= 0:
        raise ModelInputError("must be > 0", "simulate.capacityPerReplica")
    if sync_period_s <= 0:
        raise ModelInputError("must be > 0", "simulate.syncPeriodSeconds")
    if duration_s < 0 or cold_start_s < 0:
        raise ModelInputError("must be >= 0", "simulate.durationSeconds/coldStartSeconds")
    if cold_pod_phase not in ("Running", "Pending"):
        raise ModelInputError("must be Running or Pending", "simulate.coldPodPhase")
    queues = dict(queue_metrics or {})
    for qname, bound in queues.items():
        if bound is not None and bound < 0:
            raise ModelInputError("must be >= 0 or None", f"simulate.queueMetrics[{qname}]")
    steps = sorted((float(t), float(r)) for t, r in traffic)
    if not steps:
        raise ModelInputError("needs at least one (t, rps) step", "simulate.traffic")
    times = [t for t, _ in steps]
    levels = [r for _, r in steps]
    ctl = HPAController(hpa, **controller_kw)
    requests = pod_requests or {"cpu": "1", "memory": "1Gi"}
    scale = metric_at_capacity or {}
    n0 = initial_replicas if initial_replicas is not None else ctl.min_replicas
    serial = 0
    pods: list[_SimPod] = []
    for _ in range(n0):
        pods.append(_SimPod(f"pod-{serial}", -cold_start_s - 3600.0, -3600.0))
        serial += 1
    peak = max(levels)
    needed = math.ceil(peak / capacity_per_replica) if peak > 0 else 0
    res_names = {
        dig(m, "resource", "name") or dig(m, "containerResource", "name")
        for m in ctl.metrics
        if m.get("type") in ("Resource", "ContainerResource")
    } - {None}
    container_spec = [{"name": "main", "resources": {"requests": dict(requests)}}]
    req_milli = {r: _milli(requests.get(r, "0")) for r in res_names}

    timeline: list[dict] = []
    decisions: list[dict] = []
    first_up: float | None = None
    max_seen = len(pods)
    breach = 0.0
    pods_evaluated = 0
    n_syncs = math.floor(duration_s / sync_period_s + 1e-9) + 1
    backlog = dict.fromkeys(queues, 0.0)
    t_prev = 0.0
    for k in range(n_syncs):
        t = k * sync_period_s
        if queues and t > t_prev:
            _advance_backlog(backlog, queues, pods, times, levels, capacity_per_replica, t_prev, t)
        t_prev = t
        rps = _rps_at(times, levels, t)
        ready = [p for p in pods if p.ready_at <= t]
        f = rps / (len(ready) * capacity_per_replica) if ready else 0.0
        f_res = min(f, max_load_fraction) if max_load_fraction is not None else f
        pod_objs: list[dict] = []
        pod_metrics: list[dict] = []
        pods_custom: dict[str, dict[str, float]] = {}
        for p in pods:
            is_ready = p.ready_at <= t
            phase = "Running" if is_ready or cold_pod_phase == "Running" else "Pending"
            pod_objs.append(
                {
                    "metadata": {"name": p.name},
                    "spec": {"containers": container_spec},
                    "status": {
                        "phase": phase,
                        "startTime": p.created,
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True" if is_ready else "False",
                                "lastTransitionTime": p.ready_at if is_ready else p.created,
                            }
                        ],
                    },
                }
            )
            if phase == "Pending":
                continue
            load = f_res if is_ready else 0.0
            pod_metrics.append(
                {
                    "metadata": {"name": p.name},
                    "timestamp": t,
                    "window": 15.0,
                    "containers": [
                        {
                            "name": "main",
                            "usage": {r: f"{int(load * req_milli[r])}m" for r in res_names},
                        }
                    ],
                }
            )
            for m in ctl.metrics:
                if m.get("type") == "Pods":
                    name = dig(m, "pods", "metric", "name")
                    if name in queues:
                        value = backlog[name] / len(ready) if is_ready else 0.0
                    else:
                        value = (f if is_ready else 0.0) * scale.get(name, capacity_per_replica)
                    pods_custom.setdefault(name, {})[p.name] = value
        custom: dict[str, Any] = {"pods": pods_custom, "object": {}, "external": {}}
        for m in ctl.metrics:
            if m.get("type") in ("Object", "External"):
                key = "object" if m["type"] == "Object" else "external"
                name = dig(m, key, "metric", "name")
                total = (
                    backlog[name]
                    if name in queues
                    else rps / capacity_per_replica * scale.get(name, capacity_per_replica)
                )
                custom[key][name] = total if key == "object" else [total]
        pods_evaluated += len(pods)
        current = len(pods)
        decision = ctl.reconcile(
            t,
            spec_replicas=current,
            status_replicas=current,
            pods=pod_objs,
            pod_metrics=pod_metrics,
            custom_metrics=custom,
        )
        util = _utilization(decision.currentMetrics)
        timeline.append(
            {
                "t": t,
                "rps": rps,
                "desired": decision.desiredReplicas,
                "ready": len(ready),
                "current": current,
                "utilization": util,
                "loadPerReadyReplica": round(f, 4),
                **(
                    {
                        "waitingPerReadyReplica": {
                            n: round(b / len(ready), 4) if ready else 0.0
                            for n, b in backlog.items()
                        }
                    }
                    if queues
                    else {}
                ),
            }
        )
        if decision.rescale:
            decisions.append(
                {"t": t, "from": current, "to": decision.desiredReplicas, "reason": decision.reason}
            )
            if decision.desiredReplicas > current:
                if first_up is None:
                    first_up = t
                for _ in range(decision.desiredReplicas - current):
                    pods.append(_SimPod(f"pod-{serial}", t, t + cold_start_s))
                    serial += 1
            else:
                drop = current - decision.desiredReplicas
                order = sorted(
                    range(len(pods)), key=lambda i: (pods[i].ready_at <= t, -pods[i].created, -i)
                )
                gone = set(order[:drop])
                pods = [p for i, p in enumerate(pods) if i not in gone]
        max_seen = max(max_seen, len(pods))
        # integrate breach seconds exactly over [t, next sync)
        end = min(t + sync_period_s, duration_s) if k < n_syncs - 1 else t
        if end > t:
            cuts = {t, end}
            cuts.update(x for x in times if t < x < end)
            cuts.update(p.ready_at for p in pods if t < p.ready_at < end)
            pts = sorted(cuts)
            for a, b in itertools.pairwise(pts):
                n_ready = sum(1 for p in pods if p.ready_at <= a)
                if _rps_at(times, levels, a) > n_ready * capacity_per_replica:
                    breach += b - a
    return SimResult(
        timeline,
        first_up,
        max_seen,
        round(breach, 6),
        needed,
        ctl.max_replicas,
        decisions,
        n_syncs,
        pods_evaluated,
    )


def _advance_backlog(
    backlog: dict[str, float],
    bounds: Mapping[str, float | None],
    pods: list[_SimPod],
    times: list[float],
    levels: list[float],
    capacity: float,
    t0: float,
    t1: float,
) -> None:
    """The fluid queue from t0 to t1: traffic and Ready replicas are constant between the
    traffic steps and the replicas' Ready times, so the backlog is linear on each piece."""
    cuts = {t0, t1}
    cuts.update(x for x in times if t0 < x < t1)
    cuts.update(p.ready_at for p in pods if t0 < p.ready_at < t1)
    for a, b in itertools.pairwise(sorted(cuts)):
        n_ready = sum(1 for p in pods if p.ready_at <= a)
        if n_ready == 0:  # no endpoint: requests fail, nothing queues
            continue
        growth = (_rps_at(times, levels, a) - n_ready * capacity) * (b - a)
        for name, bound in bounds.items():
            cap = math.inf if bound is None else n_ready * bound
            backlog[name] = min(max(backlog[name] + growth, 0.0), cap)


def _milli(q: str) -> int:
    return to_milli(q, "simulate.podRequests")


def _utilization(metrics: list[dict]) -> float | None:
    for m in metrics:
        body = m.get("resource") or m.get("containerResource")
        if body and "averageUtilization" in body.get("current", {}):
            return float(body["current"]["averageUtilization"])
    return None
