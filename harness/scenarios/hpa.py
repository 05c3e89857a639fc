"""hpa: baseline -> spike (profile factor) -> baseline; how fast and how well does it scale?

Measured: time from the spike's start to the first scale-up decision (SuccessfulRescale event,
else the HPA status history), to the first new replica Ready (vs `spike.scale_out_s`), SLA-breach
seconds from the spike on (vs `spike.max_breach_s`), the most replicas reached vs the replicas
needed (`ceil(spike rate / per-replica capacity)`; capacity measured in this run when neither an
earlier scenario nor the profile gives it), and flapping on the way down (direction changes).
A spike the generator did not deliver makes the scenario fail, never pass. The HPA model's
prediction for the same spike (harness.models.hpa_sim) is kept beside the measurement.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from harness.backends.base import Backend
from harness.backends.observe import FaultRecord
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.cold_start import start_timeout_s
from harness.verdict import Check, Verdict

NAME = "hpa"
CAPACITY_PROBE_S = 6.0
SPIKE_DELIVERED_MIN = 0.95  # achieved / requested rate during the spike


def run(ctx: ScenarioContext) -> Verdict:
    hpa = ctx.bundle.hpa
    meas: dict[str, Any] = {}
    checks: list[Check] = []
    faults: list[FaultRecord] = []
    if hpa is None:
        checks.append(Check(name="hpa_present", measured=False, target=True, ok=False,
                            note="no HorizontalPodAutoscaler: nothing scales for the spike"))
        return _finish(ctx, checks, faults, meas)
    max_r = int(hpa.get("spec", {}).get("maxReplicas", 1))
    min_r = int(hpa.get("spec", {}).get("minReplicas", 1))
    with ctx.deploy(wait=False) as backend:
        failed = common.rollout_ready_check(backend, common.spec_replicas(ctx.bundle), start_timeout_s(ctx) * 2)
        if failed:
            checks.append(failed)
            return _finish(ctx, checks, faults, meas)
        capacity, cap_source = capacity_per_replica(ctx, backend)
        meas.update({"capacity_rps_per_replica": capacity, "capacity_source": cap_source,
                     "hpa_min_replicas": min_r, "hpa_max_replicas": max_r})
        t_spike = time.time()
        checks += spike_phase(ctx, backend, capacity, max_r, faults, meas)
        meas.update(common.cpu_throttling(backend.resource_samples(since=t_spike)))
    return _finish(ctx, checks, faults, meas)


def _finish(ctx: ScenarioContext, checks: list[Check], faults: list[FaultRecord],
            meas: dict[str, Any]) -> Verdict:
    return common.finish(ctx, NAME, "hpa_scenario.json", checks, faults, meas,
                         report_only=("replica_timeline", "model"))


# --------------------------------------------------------------------------------------------


def capacity_per_replica(ctx: ScenarioContext, backend: Backend) -> tuple[float, str]:
    """Measured earlier in the run > declared in the profile > measured here (one replica, closed loop)."""
    if ctx.measured.get("capacity_rps_per_replica"):
        return float(ctx.measured["capacity_rps_per_replica"]), "measured earlier in this run"
    if ctx.profile.spike.capacity_rps_per_replica:
        return float(ctx.profile.spike.capacity_rps_per_replica), "declared in the profile"
    pod = sorted(p.name for p in backend.pods() if p.ready)[0]
    url = backend.pod_url(pod).rstrip("/")
    spec = common.load_spec(ctx, backend, mode="closed", users=8, duration_s=CAPACITY_PROBE_S, shape=None,
                            target=url, allow_targets=[url])
    res = common.run_load(ctx, spec, "capacity")
    p90 = (res.latency_ms or {}).get("p90")
    target = ctx.profile.slo.latency_ms.get("p90")
    cap = res.ok / max(res.duration_s, 1e-6)
    # at a latency above the target, the replica's SLA-compatible capacity is proportionally lower
    if p90 and target and p90 > target:
        cap *= target / p90
    cap = max(cap, 1e-3)
    ctx.measured["capacity_rps_per_replica"] = cap
    return round(cap, 2), f"measured here: one replica, 8 closed-loop users for {CAPACITY_PROBE_S:g}s (p90 {p90} ms)"


class ReplicaWatcher:
    """Samples Deployment status and Ready pods every 0.5 s (replicas desired/ready over time)."""

    def __init__(self, backend: Backend, period_s: float = 0.5) -> None:
        self.backend = backend
        self.period_s = period_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replica-watch", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                st = self.backend.deployment_status()
                self.samples.append({"time": time.time(), "spec": st.specReplicas, "ready": st.readyReplicas,
                                     "replicas": st.replicas})
            except Exception:
                pass
            self._stop.wait(self.period_s)

    def __enter__(self) -> ReplicaWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def spike_phase(ctx: ScenarioContext, backend: Backend, capacity: float, max_r: int,
                faults: list[FaultRecord], meas: dict[str, Any]) -> list[Check]:
    prof = ctx.profile
    sp = prof.spike
    spec = common.load_spec(ctx, backend, shape="spike")
    base_rate = spec.rate_rps
    spike_rate = base_rate * sp.factor
    needed = max(1, math.ceil(spike_rate / capacity))
    initial = backend.deployment_status().specReplicas or common.spec_replicas(ctx.bundle)
    t_before = time.time()
    with ReplicaWatcher(backend) as watch:
        result = common.run_load(ctx, spec, "load")
        time.sleep(1.0)
    spike_t0 = result.started_at + sp.baseline_s
    spike_t1 = spike_t0 + sp.spike_s
    spike_win = result.window(spike_t0, spike_t1)
    delivered = spike_win.rate_rps / spike_rate if spike_rate else 0.0
    faults.append(FaultRecord(
        kind="spike", target=spec.target, started_at=spike_t0, ended_at=spike_t1,
        affected=[f"{base_rate:g} -> {spike_rate:g} req/s"], landed=bool(result.valid and delivered >= SPIKE_DELIVERED_MIN),
        detail=f"delivered {spike_win.rate_rps:.1f} req/s of {spike_rate:g} requested ({delivered:.0%})",
    ))

    history = backend.hpa_history()
    events = backend.events(since=t_before)
    rescales = sorted((e for e in events if e.reason == "SuccessfulRescale"), key=lambda e: e.firstTimestamp)
    decision_t = first_scale_up(rescales, history, initial, spike_t0)
    ready_t = next((s["time"] for s in watch.samples if s["time"] >= spike_t0 and s["ready"] > initial), None)
    max_ready = max((s["ready"] for s in watch.samples), default=0)
    max_desired = max([h.desiredReplicas for h in history if h.time >= t_before] + [initial])
    breach = breach_seconds(ctx, result, spike_t0)
    flaps = flapping([(h.time, h.desiredReplicas) for h in history if h.time >= spike_t1]
                     or [(s["time"], s["spec"]) for s in watch.samples if s["time"] >= spike_t1])
    decision_s = None if decision_t is None else round(decision_t - spike_t0, 2)
    ready_s = None if ready_t is None else round(ready_t - spike_t0, 2)
    meas.update({
        "baseline_rps": base_rate, "spike_rps": spike_rate, "spike_delivered_rps": round(spike_win.rate_rps, 2),
        "initial_replicas": initial, "needed_replicas": needed, "max_desired_replicas": max_desired,
        "max_ready_replicas": max_ready, "first_scale_decision_s": decision_s, "first_new_ready_s": ready_s,
        "breach_seconds": breach["seconds"], "breach_detail": breach["detail"],
        "flaps_on_way_down": flaps, "rescale_events": [e.message for e in rescales],
        "spike_latency_ms": spike_win.latency_ms, "spike_errors": spike_win.errors,
        "replica_timeline": watch.samples, "model": predicted(ctx, capacity, initial),
    })
    ctx.write_json("replicas.json", watch.samples)
    scale_needed = needed > initial
    return [
        common.load_validity_check(result),
        common.fault_landed_check("spike_delivered", faults[-1]),
        Check(name="first_scale_decision_s", measured=decision_s if decision_s is not None else "none",
              target=sp.scale_out_s, unit="s",
              ok=(decision_s is not None and decision_s <= sp.scale_out_s) or not scale_needed,
              note="" if scale_needed else f"{needed} replica(s) carry {spike_rate:g} req/s at "
                   f"{capacity:g} req/s each; {initial} were running"),
        Check(name="first_new_replica_ready_s", measured=ready_s if ready_s is not None else "none",
              target=sp.scale_out_s, unit="s",
              ok=(ready_s is not None and ready_s <= sp.scale_out_s) or not scale_needed),
        Check(name="breach_seconds", measured=breach["seconds"], target=sp.max_breach_s, unit="s",
              ok=breach["seconds"] <= sp.max_breach_s, note=breach["detail"]),
        Check(name="max_replicas_reached", measured=max(max_ready, max_desired), target=f">= {needed} needed",
              ok=max(max_ready, max_desired) >= needed,
              note=f"maxReplicas {max_r}" + (f" < {needed} needed" if max_r < needed else "")),
        Check(name="flaps_on_way_down", measured=flaps, target=0, ok=flaps == 0),
    ]


def first_scale_up(rescales: list[Any], history: list[Any], initial: int, since: float) -> float | None:
    """Time of the first scale-up decision at or after `since`: event first, else HPA status."""
    for e in rescales:
        if e.firstTimestamp >= since - 1 and ("above target" in e.message or "New size" in e.message):
            m = _new_size(e.message)
            if m is None or m > initial:
                return e.firstTimestamp
    for h in history:
        if h.time >= since - 1 and h.desiredReplicas > initial:
            return h.time
    return None


def _new_size(message: str) -> int | None:
    import re

    m = re.search(r"New size: (\d+)", message)
    return int(m.group(1)) if m else None


def flapping(series: list[tuple[float, int]]) -> int:
    """Direction changes of the replica count (down then up, or up then down)."""
    changes = 0
    last_dir = 0
    prev = None
    for _, v in sorted(series):
        if prev is not None and v != prev:
            d = 1 if v > prev else -1
            if last_dir and d != last_dir:
                changes += 1
            last_dir = d
        prev = v
    return changes


def breach_seconds(ctx: ScenarioContext, result: Any, since: float) -> dict[str, Any]:
    """Seconds (1 s windows, from the records) from the spike on where the SLA did not hold."""
    slo = ctx.profile.slo
    bad: list[float] = []
    t = since
    while t < result.end_epoch - 1e-6:
        w = result.window(t, min(t + 1.0, result.end_epoch))
        if w.requests + w.dropped and not w.meets(slo.latency_ms, slo.availability):
            bad.append(round(t - since, 1))
        t += 1.0
    detail = (f"{len(bad)} s breached, first at +{bad[0]:g}s, last at +{bad[-1]:g}s after the spike start"
              if bad else "no second breached the SLA")
    return {"seconds": float(len(bad)), "detail": detail, "at": bad}


def predicted(ctx: ScenarioContext, capacity: float, initial: int) -> dict[str, Any] | None:
    """The HPA model's replica timeline for the same spike (evidence beside the measurement)."""
    try:
        from harness.models import hpa_sim
    except ImportError:
        return None
    sp = ctx.profile.spike
    base = ctx.profile.load.baseline_rps
    cold = common.percentile(ctx.measured.get("cold_start_s") or [], 95) or (
        ctx.profile.cold_start.declared_p95_s or ctx.profile.cold_start.p95_s)
    traffic = [(0.0, base), (sp.baseline_s, base * sp.factor), (sp.baseline_s + sp.spike_s, base)]
    try:
        res = hpa_sim.simulate(ctx.bundle.hpa or {}, traffic=traffic, capacity_per_replica=capacity,
                               cold_start_s=float(cold), duration_s=sp.baseline_s + sp.spike_s + sp.after_s,
                               initial_replicas=initial)
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"}
    d = res.to_dict()
    d.pop("timeline", None)
    return d
