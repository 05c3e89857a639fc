"""Autoscaling rules: the HPA can reach the spike, scales on a signal that fits the workload."""

from __future__ import annotations

import math
from typing import Any

from harness.check.findings import Finding
from harness.check.rules._base import finding
from harness.check.rules.server import VLLM_QUEUE_FLAG, waiting_bound
from harness.check.targets import Targets
from harness.check.workload import Workload
from harness.models.hpa import simulate
from harness.quantity import parse_quantity

HPA_FIELD = "spec"


def _hpa_resource(w: Workload) -> str:
    assert w.hpa is not None
    return f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}"


def _metrics(w: Workload) -> list[dict[str, Any]]:
    return list(
        ((w.hpa or {}).get("spec") or {}).get("metrics")
        or [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    )


def hpa_capacity(w: Workload, t: Targets) -> list[Finding]:
    spike = t.profile.spike
    base = t.profile.load.baseline_rps
    peak = spike.factor * base
    if w.hpa is None:
        return [
            finding(
                w,
                "hpa-missing",
                "warning",
                "spec.replicas",
                f"no HorizontalPodAutoscaler targets {w.resource}: a {spike.factor:g}x "
                "spike is served by a fixed replica count",
                measured=f"replicas {w.spec_replicas}",
                required=f"capacity for {peak:g} rps ({spike.factor:g} x {base:g})",
                fix="add an autoscaling/v2 HorizontalPodAutoscaler",
            )
        ]
    res = _hpa_resource(w)
    lo, hi = w.steady_replicas, w.max_replicas
    cap = t.capacity_rps_per_replica
    if cap is None:
        if hi <= lo:
            return [
                finding(
                    w,
                    "hpa-max-replicas",
                    "error",
                    "spec.maxReplicas",
                    f"maxReplicas {hi} <= minReplicas {lo}: the autoscaler can never add a replica "
                    f"for the profile's {spike.factor:g}x spike",
                    resource=res,
                    measured=f"minReplicas {lo}, maxReplicas {hi}",
                    required=f"room to scale for {spike.factor:g} x baseline",
                    fix="raise maxReplicas (pass --measured for a capacity-based number)",
                )
            ]
        return [
            finding(
                w,
                "hpa-max-replicas",
                "info",
                "spec.maxReplicas",
                "per-replica capacity unknown: maxReplicas not checked against the spike",
                resource=res,
                fix="pass --measured report.json or set "
                "spike.capacity_rps_per_replica in the profile",
            )
        ]
    # the spike the hpa scenario runs: raised from capacity when the initial replicas carry 5x
    peak, sizing = spike.rate(base, cap.value, lo)
    need = math.ceil(peak / cap.value - 1e-9)
    if hi < need:
        return [
            finding(
                w,
                "hpa-max-replicas",
                "error",
                "spec.maxReplicas",
                f"at maxReplicas the service cannot carry the {spike.factor:g}x spike",
                resource=res,
                measured=f"maxReplicas {hi} x {cap.value:g} rps = {hi * cap.value:g} rps",
                required=f">= {peak:g} rps ({sizing}) -> maxReplicas >= {need}",
                fix=f"set maxReplicas: {need} (or more for headroom)",
                basis=cap.basis,
            )
        ]
    return []


def hpa_signal(w: Workload, t: Targets) -> list[Finding]:
    if w.hpa is None:
        return []
    out: list[Finding] = []
    res = _hpa_resource(w)
    metrics = _metrics(w)
    types = {
        (m.get("type"), ((m.get("resource") or m.get("containerResource") or {}).get("name")))
        for m in metrics
    }
    resource_only = all(tp in ("Resource", "ContainerResource") for tp, _ in types)
    if w.uses_gpu() and resource_only and any(n == "cpu" for _, n in types):
        out.append(
            finding(
                w,
                "hpa-gpu-cpu-signal",
                "warning",
                "spec.metrics",
                "a GPU inference workload is scaled on CPU only: the GPU saturates (queue grows, "
                "latency climbs) while CPU stays low, so the autoscaler reacts late or never",
                resource=res,
                measured="metrics: " + ", ".join(f"{a} {b}" for a, b in sorted(types, key=str)),
                required="a load signal of the server: requests running/waiting per pod "
                "(Pods metric) or GPU utilisation",
                fix="add a Pods metric such as num_requests_running (AverageValue) and keep CPU "
                "only as a fallback",
            )
        )
    if "behavior" not in (w.hpa.get("spec") or {}):
        out.append(
            finding(
                w,
                "hpa-behavior-missing",
                "info",
                "spec.behavior",
                "no behavior: legacy scaling rules apply (scale-up capped at max(2 x current, 4) "
                "per sync, 5 min scale-down stabilization)",
                resource=res,
                fix="set spec.behavior.scaleUp/scaleDown explicitly",
            )
        )
    for i, c in enumerate(w.containers):
        for m in metrics:
            if m.get("type") != "Resource":
                continue
            name = (m.get("resource") or {}).get("name")
            tgt = ((m.get("resource") or {}).get("target") or {}).get("type")
            requests = (c.get("resources") or {}).get("requests") or {}
            if (
                tgt == "Utilization"
                and name
                and name not in requests
                and name not in ((c.get("resources") or {}).get("limits") or {})
            ):
                out.append(
                    finding(
                        w,
                        "hpa-missing-request",
                        "error",
                        w.container_field(i, "resources.requests"),
                        f"the HPA scales on {name} utilization but container {c.get('name')!r} has "
                        f"no {name} request: the metric cannot be computed and the HPA never acts",
                        measured=f"no requests.{name}",
                        required=f"requests.{name} set",
                        fix=f"set resources.requests.{name}",
                    )
                )
    return out


def _keda_source(w: Workload, external: str) -> str | None:
    """The metric a ScaledObject's prometheus trigger queries for External `external`."""
    if w.scaled_object is None:
        return None
    from harness.models import keda

    return keda.source_metric(keda.parse(w.scaled_object), external)


def _same_metric(a: str, b: str | None) -> bool:
    """prometheus-adapter serves vllm:num_requests_waiting as vllm_num_requests_waiting."""
    return b is not None and a.replace(":", "_") == b.replace(":", "_")


def hpa_scale_out(w: Workload, t: Targets) -> list[Finding]:
    """Simulate the spike with the HPA model: first new replica Ready within scale_out_s?

    The spike is the one the hpa scenario runs (SpikeTargets.rate: raised from capacity when the
    initial replicas would carry factor x baseline). A metric the server kind names as its
    waiting queue (vllm:num_requests_waiting) is modelled as a queue (requests past capacity
    wait, up to the server's own bound), any other Pods metric as load (target = its value at
    capacity)."""
    if w.hpa is None or t.capacity_rps_per_replica is None or t.cold_start_p95_s is None:
        return []
    spike, base = t.profile.spike, t.profile.load.baseline_rps
    cap, cold = t.capacity_rps_per_replica.value, t.cold_start_p95_s.value
    peak, _ = spike.rate(base, cap, w.steady_replicas)
    queue_name = w.server.metric("queue")
    bound, bound_how = waiting_bound(w)
    at_capacity: dict[str, float] = {}
    queues: dict[str, float | None] = {}
    targets: dict[str, float] = {}
    for m in _metrics(w):
        key = {"Pods": "pods", "Object": "object", "External": "external"}.get(str(m.get("type")))
        if key is None:
            continue
        name = ((m.get(key) or {}).get("metric") or {}).get("name")
        # a Pods metric's target is per pod (AverageValue), as the queue bound is
        value = ((m.get(key) or {}).get("target") or {}).get("averageValue")
        if not name:
            continue
        # KEDA's s0-prometheus stands for its trigger's query: judged by the metric it sums
        source = _keda_source(w, name)
        if _same_metric(source or name, queue_name):
            queues[name] = bound
            if key == "pods" and value is not None:
                targets[name] = float(parse_quantity(value))
        elif (key == "pods" or source is not None) and value is not None:
            at_capacity[name] = float(parse_quantity(value))
    requests = (
        ((w.containers[w.serving_indexes()[0]].get("resources") or {}).get("requests") or {})
        if w.containers
        else {}
    )
    try:
        r = simulate(
            w.hpa,
            traffic=[(0, base), (spike.baseline_s, peak)],
            capacity_per_replica=cap,
            cold_start_s=cold,
            duration_s=spike.baseline_s + spike.spike_s,
            pod_requests={k: str(v) for k, v in requests.items()} or None,
            metric_at_capacity=at_capacity or None,
            queue_metrics=queues or None,
        )
    except Exception as err:  # a model limitation must not hide the other findings
        return [
            finding(
                w,
                "hpa-scale-out",
                "info",
                "spec",
                f"spike not simulated: {err}",
                resource=_hpa_resource(w),
            )
        ]
    ready = None if r.first_scale_up_s is None else r.first_scale_up_s - spike.baseline_s + cold
    basis = f"{simulate.__module__}; {t.cold_start_p95_s.basis}"
    if queues:
        basis += (
            f"; {', '.join(sorted(queues))} modelled as a queue (requests past "
            f"{cap:g} rps/replica wait, "
            + (
                f"at most {bound:g} per replica: {bound_how})"
                if bound is not None
                else "unbounded)"
            )
        )
    if ready is None or ready > spike.scale_out_s:
        message = (
            "in the simulated spike the first new replica is Ready too late"
            if ready is not None
            else "in the simulated spike the HPA never scales up"
        )
        fix = "lower the HPA target, shorten scaleUp stabilization, or cut the cold start"
        capped = [n for n, v in targets.items() if bound is not None and bound <= v]
        if ready is None and capped:
            message += (
                f": vLLM's waiting queue holds at most {bound:g} requests per replica "
                f"({bound_how}), never more than the target {targets[capped[0]]:g} of "
                f"{capped[0]}; past it requests are rejected, not queued"
            )
            fix = f"set the {capped[0]} target below {bound:g}, or raise {VLLM_QUEUE_FLAG}"
        return [
            finding(
                w,
                "hpa-scale-out",
                "warning",
                "spec.behavior.scaleUp",
                message,
                resource=_hpa_resource(w),
                measured=(
                    f"first scale-up {ready - cold:g} s after the spike + cold start "
                    f"{cold:g} s = {ready:g} s"
                )
                if ready is not None
                else "no scale-up",
                required=f"<= {spike.scale_out_s:g} s (profile spike.scale_out_s)",
                fix=fix,
                basis=basis,
            )
        ]
    return []


RULES = [hpa_capacity, hpa_signal, hpa_scale_out]
