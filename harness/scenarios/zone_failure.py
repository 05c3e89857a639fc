"""zone-failure: lose one zone under steady load; SLA per window, budget, placement, recovery; drain.

Steady open-loop load at `load.baseline_rps`; at `zones.fault_at_s` the zone with most replicas
(or `zones.fail_zone`) is lost (`backend.zone_outage`). Measured: SLA per `slo.window_s` window
(`harness.sla`), error budget burned, placement before/after, Pending pods, time until the SLA
holds again and until spec.replicas are Ready again (both vs `zones.recovery_s`). Then the zone
is restored and another zone is drained through the PDB while long requests are in flight on
it: the drain must finish (a budget that blocks forever fails) and lose no accepted request
(a grace period shorter than the drain cuts them off).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import time
from typing import Any

import httpx

from harness.backends.base import Backend
from harness.backends.observe import FaultRecord
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.cold_start import start_timeout_s
from harness.sla import evaluate
from harness.verdict import Check, Verdict

NAME = "zone-failure"
DRAIN_TIMEOUT_S = 30.0  # longer than a healthy drain needs; a blocking budget stays blocked
#: in-flight requests during the drain last about this long (s); the drain must let them finish
DRAIN_REQUEST_S = 5.0
BATCH = 16  # the reference service's default max batch
MAX_INFLIGHT = 64


def run(ctx: ScenarioContext) -> Verdict:
    checks: list[Check] = []
    faults: list[FaultRecord] = []
    meas: dict[str, Any] = {}
    replicas = common.spec_replicas(ctx.bundle)
    with ctx.deploy(wait=False) as backend:
        failed = common.rollout_ready_check(backend, replicas, start_timeout_s(ctx) * 2)
        if failed:
            checks.append(failed)
        else:
            checks += outage_phase(ctx, backend, faults, meas)
            checks += drain_phase(ctx, backend, faults, meas)
    return common.finish(ctx, NAME, "zone_failure.json", checks, faults, meas,
                         loads=("load.json", "drain_load.json"))


def choose_zone(placement: dict[str, list[str]], configured: str | None) -> str | None:
    if configured:
        return configured
    zones = [(len(pods), z) for z, pods in placement.items() if z != "<unscheduled>"]
    return max(zones, key=lambda t: (t[0], [-ord(c) for c in t[1]]))[1] if zones else None


# --------------------------------------------------------------------------------------------


def outage_phase(ctx: ScenarioContext, backend: Backend, faults: list[FaultRecord],
                 meas: dict[str, Any]) -> list[Check]:
    prof = ctx.profile
    z = prof.zones
    window = prof.slo.window_s
    duration = max(prof.load.duration_s, z.fault_at_s + z.recovery_s + 2 * window)
    before = common.zone_placement(backend.pods())
    zone = choose_zone(before, z.fail_zone)
    meas["placement_before"] = before
    meas["fail_zone"] = zone
    spec = common.load_spec(ctx, backend, duration_s=duration, shape=None)
    replicas = common.spec_replicas(ctx.bundle)
    t_restored: float | None = None
    max_pending = 0
    with common.background_load(ctx, spec, "load") as handle:
        time.sleep(z.fault_at_s)
        fault = backend.zone_outage(zone) if zone else FaultRecord(
            kind="zone-outage", target="<none>", started_at=time.time(), landed=False,
            detail="no zone has a replica")
        faults.append(fault)
        t_fault = fault.started_at
        meas["placement_right_after"] = common.zone_placement(backend.pods())
        end = handle_end(handle, t_fault, z.fault_at_s, duration)
        while time.time() < end:
            pods = backend.pods()
            pending = [p for p in pods if p.phase == "Pending" and p.deletionTimestamp is None]
            max_pending = max(max_pending, len(pending))
            ready = sum(1 for p in pods if p.ready and p.deletionTimestamp is None)
            if t_restored is None and ready >= replicas and time.time() > t_fault + 0.5:
                t_restored = time.time()
            time.sleep(0.5)
        result = handle.wait(timeout=duration + spec.timeout_s + 120)
    pods_after = backend.pods()
    after = common.zone_placement(pods_after)
    pending_after = sorted(p.name for p in pods_after if p.phase == "Pending" and p.deletionTimestamp is None)
    pending_reasons = [f"{e.involvedObject.name}: {e.message}" for e in backend.events(since=t_fault)
                       if e.reason == "FailedScheduling"][:3]
    windows = sla_windows(ctx, result, t_fault)
    recovery = recovery_after(windows, t_fault)
    budget = common.error_budget(int(result.requests + result.dropped),
                                 int(sum(result.errors.values()) + result.dropped), prof.slo)
    meas.update({
        "placement_after": after, "pending_after": pending_after, "max_pending": max_pending,
        "pending_reasons": pending_reasons, "windows": windows, "error_budget": budget,
        "latency_ms": result.latency_ms, "errors": result.errors,
        "replicas_ready_again_s": None if t_restored is None else round(t_restored - t_fault, 2),
        "sla_recovered_s": recovery,
    })
    zones_used = [zz for zz in before if zz != "<unscheduled>"]
    spread_target = min(replicas, len(z.zones))
    lost = len(before.get(zone or "", []))
    restored_s = meas["replicas_ready_again_s"]
    return [
        common.load_validity_check(result),
        common.fault_landed_check("zone_outage_landed", fault),
        Check(name="zones_with_replicas_before", measured=len(zones_used), target=f">= {spread_target}",
              ok=len(zones_used) >= spread_target,
              note="" if len(zones_used) >= spread_target else f"placement {before}: one zone holds "
                   f"{lost}/{replicas} replicas"),
        Check(name="sla_recovered_s", measured=recovery if recovery is not None else "never",
              target=z.recovery_s, unit="s", ok=recovery is not None and recovery <= z.recovery_s,
              note=_breach_note(windows, t_fault)),
        Check(name="replicas_ready_again_s", measured=restored_s if restored_s is not None else "never",
              target=z.recovery_s, unit="s", ok=restored_s is not None and restored_s <= z.recovery_s,
              note="" if restored_s is not None else f"{len(pending_after)} pods stranded Pending: "
                   + ("; ".join(pending_reasons) or str(pending_after))),
        Check(name="pending_after", measured=len(pending_after), target=0, ok=not pending_after,
              note="; ".join(pending_reasons)),
        Check(name="error_budget_burned", measured=budget["burned"], target="<= 1.0",
              ok=budget["burned"] is not None and budget["burned"] <= 1.0,
              note=f"{budget['errors']} failed of {budget['requests']} (allowed "
                   f"{budget['allowed_errors']}; {budget['budget_minutes_per_30d']} min/30d at "
                   f"{prof.slo.availability})"),
    ]


def handle_end(handle: Any, t_fault: float, fault_at_s: float, duration: float) -> float:
    """When the load run ends (epoch s): its start time, else inferred from the fault time."""
    started = getattr(handle, "started_at", None) or (t_fault - fault_at_s)
    return float(started) + duration


def sla_windows(ctx: ScenarioContext, result: Any, t_fault: float) -> list[dict[str, Any]]:
    """The run's `slo.window_s` windows as harness.sla evaluates them, placed against the fault."""
    out: list[dict[str, Any]] = []
    for w in evaluate(result, ctx.profile.slo, check_rate=False).windows:
        ws = w.stats
        out.append({
            "t0": round(ws.t0 - result.started_at, 2), "t1": round(ws.t1 - result.started_at, 2),
            "epoch0": ws.t0, "after_fault": ws.t0 >= t_fault, "contains_fault": ws.t0 <= t_fault < ws.t1,
            "requests": ws.requests, "errors": ws.errors, "dropped": ws.dropped,
            "availability": ws.availability, "latency_ms": ws.latency_ms,
            "sla_met": not w.breached, "breaches": w.reasons,
        })
    return out


def recovery_after(windows: list[dict[str, Any]], t_fault: float) -> float | None:
    """Seconds from the fault to the start of the first window after which every window met the SLA."""
    relevant = [w for w in windows if w["after_fault"] or w["contains_fault"]]
    if not relevant:
        return None
    last_bad = None
    for i, w in enumerate(relevant):
        if not w["sla_met"]:
            last_bad = i
    if last_bad is None:
        return 0.0
    if last_bad == len(relevant) - 1:
        return None  # still breaching when the run ended
    return round(max(0.0, relevant[last_bad + 1]["epoch0"] - t_fault), 2)


def _breach_note(windows: list[dict[str, Any]], t_fault: float) -> str:
    bad = [w for w in windows if not w["sla_met"]]
    if not bad:
        return "every window met the SLA"
    return "breached windows (s from start): " + ", ".join(f"{w['t0']:g}-{w['t1']:g}" for w in bad[:6])


# --------------------------------------------------------------------------------------------
# drain through the PDB, with long requests in flight on the drained zone


def drain_phase(ctx: ScenarioContext, backend: Backend, faults: list[FaultRecord],
                meas: dict[str, Any]) -> list[Check]:
    fail_zone = meas.get("fail_zone")
    if fail_zone:
        faults.append(backend.restore_zone(fail_zone))
        common.wait_rollout(backend, common.spec_replicas(ctx.bundle), start_timeout_s(ctx))
    placement = common.zone_placement(backend.pods(), only_ready=True)
    candidates = [(len(p), zz) for zz, p in placement.items() if zz not in (fail_zone, "<unscheduled>")]
    if not candidates:
        return [Check(name="drain_fault_landed", measured=False, target=True, ok=False,
                      note=f"no other zone with a Ready replica to drain (placement {placement})")]
    zone = max(candidates)[1]
    targets = placement[zone]
    plan = {pod: _inflight_plan(backend, pod) for pod in targets}
    n = sum(k for k, _ in plan.values())
    with cf.ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        inflight = [pool.submit(_long_request, backend, pod, body)
                    for pod, (k, body) in plan.items() for _ in range(k)]
        time.sleep(0.5)  # let them be accepted before the eviction
        fault = backend.drain_zone(zone, timeout_s=DRAIN_TIMEOUT_S)
        faults.append(fault)
        outcomes = [f.result() for f in inflight]
    accepted = [o for o in outcomes if o["accepted"]]
    lost = [o for o in accepted if not o["ok"]]
    meas["drain"] = {"zone": zone, "pods": targets, "record": fault.model_dump(), "requests": outcomes}
    return [
        Check(name="drain_completed", measured=fault.landed, target=True, ok=fault.landed,
              note=(fault.detail or "the disruption budget blocked the drain") if not fault.landed
              else f"evicted {fault.affected}"),
        Check(name="drain_lost_requests", measured=len(lost), target=0, ok=not lost,
              note=f"{len(lost)}/{len(accepted)} accepted in-flight requests were cut off during the "
                   f"drain ({lost[0]['error']})" if lost else f"{len(accepted)} in-flight requests finished"),
    ]


def _inflight_plan(backend: Backend, pod: str) -> tuple[int, dict[str, Any]]:
    """How many long requests keep `pod` busy for about DRAIN_REQUEST_S (from one timed request).

    The work must outlast preStop + a short grace period (so a grace shorter than the drain cuts
    it off) yet finish well inside a correct drain timeout.
    """
    body = {"prompt": "Drain me gently. " * 24, "max_tokens": 200, "temperature": 0.0}
    url = backend.pod_url(pod).rstrip("/") + "/v1/completions"
    t0 = time.time()
    try:
        httpx.post(url, json=body, timeout=DRAIN_TIMEOUT_S).raise_for_status()
    except httpx.HTTPError:
        return 1, body
    one = max(0.05, time.time() - t0)
    return int(min(MAX_INFLIGHT, max(BATCH, BATCH * math.ceil(DRAIN_REQUEST_S / one)))), body


def _long_request(backend: Backend, pod: str, body: dict[str, Any]) -> dict[str, Any]:
    """One long request straight to `pod`; accepted = not refused with 429/503."""
    url = backend.pod_url(pod).rstrip("/") + "/v1/completions"
    out: dict[str, Any] = {"pod": pod, "accepted": False, "ok": False, "error": "", "status": None}
    t0 = time.time()
    try:
        r = httpx.post(url, json=body, timeout=DRAIN_TIMEOUT_S)
        out.update(status=r.status_code, accepted=r.status_code not in (429, 503), ok=r.status_code == 200)
        if not out["ok"]:
            out["error"] = f"HTTP {r.status_code}"
    except httpx.HTTPError as err:
        out.update(accepted=True, error=f"{type(err).__name__}: {err}")
    out["seconds"] = round(time.time() - t0, 2)
    return out
