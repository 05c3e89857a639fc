"""zone-failure: lose one zone under steady load; SLA per window, budget, placement, recovery;
drain.

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
from collections import Counter
from typing import Any

import httpx

from harness.backends.base import Backend
from harness.backends.observe import FaultKind, FaultRecord
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.cold_start import start_timeout_s
from harness.sla import evaluate
from harness.verdict import Check, Verdict

NAME = "zone-failure"
#: every check this scenario can report, in the order it reports them (a pytest result each)
CHECKS = (
    "rollout_ready",
    "load_valid",
    "zone_outage_landed",
    "zones_with_replicas_before",
    "sla_recovered_s",
    "replicas_ready_again_s",
    "pending_after",
    "error_budget_burned",
    "ready_after_zone_restored",
    "drain_fault_landed",
    "drain_completed",
    "drain_exercised",
    "drain_lost_requests",
)
DRAIN_TIMEOUT_S = 30.0  # longer than a healthy drain needs; a blocking budget stays blocked
#: each in-flight request works for preStop + this share of the service's drain timeout
DRAIN_WORK_SHARE = 0.6
#: two timed rounds: fixed vs per-token cost, the long one deep enough to include the cost of
#: attending over a long sequence
CALIBRATION_TOKENS = (64, 448)
#: long requests per drained pod: two rows generate slower per token than one, so the work
#: reaches past the SIGKILL of a short grace period within the positions the model has. Split
#: into two batches by their arrival, the second waits past the service's queue-wait bound and
#: is refused (429), not lost
IN_FLIGHT_PER_POD = 2
#: outcomes of a request that the server never accepted: not lost by the drain
REFUSED = ("refused_status", "refused_connection", "timed_out_before_acceptance")


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
    return common.finish(ctx, NAME, checks, faults, meas)


def choose_zone(placement: dict[str, list[str]], configured: str | None) -> str | None:
    if configured:
        return configured
    zones = [(len(pods), z) for z, pods in placement.items() if z != "<unscheduled>"]
    return max(zones, key=lambda t: (t[0], [-ord(c) for c in t[1]]))[1] if zones else None


# --------------------------------------------------------------------------------------------


def outage_phase(
    ctx: ScenarioContext, backend: Backend, faults: list[FaultRecord], meas: dict[str, Any]
) -> list[Check]:
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
    with common.background_load(ctx, spec) as handle:
        time.sleep(z.fault_at_s)
        fault = (
            backend.zone_outage(zone)
            if zone
            else FaultRecord(
                kind=FaultKind.ZONE_OUTAGE,
                target="<none>",
                started_at=time.time(),
                landed=False,
                detail="no zone has a replica",
            )
        )
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
    pending_after = sorted(
        p.name for p in pods_after if p.phase == "Pending" and p.deletionTimestamp is None
    )
    pending_reasons = [
        f"{e.involvedObject.name}: {e.message}"
        for e in backend.events(since=t_fault)
        if e.reason == "FailedScheduling"
    ][:3]
    windows = sla_windows(ctx, result, t_fault)
    recovery = recovery_after(windows, t_fault)
    budget = common.error_budget(
        int(result.requests + result.dropped),
        int(sum(result.errors.values()) + result.dropped),
        prof.slo,
    )
    meas.update(
        {
            "placement_after": after,
            "pending_after": pending_after,
            "max_pending": max_pending,
            "pending_reasons": pending_reasons,
            "windows": windows,
            "error_budget": budget,
            "latency_ms": result.latency_ms,
            "errors": result.errors,
            "replicas_ready_again_s": None
            if t_restored is None
            else round(t_restored - t_fault, 2),
            "sla_recovered_s": recovery,
            **common.stream_summary(result, prof.slo),
            **_survivors_capacity(ctx, replicas - len(before.get(zone or "", []))),
        }
    )
    zones_used = [zz for zz in before if zz != "<unscheduled>"]
    spread_target = min(replicas, len(z.zones))
    lost = len(before.get(zone or "", []))
    restored_s = meas["replicas_ready_again_s"]
    return [
        common.load_validity_check(result),
        common.fault_landed_check("zone_outage_landed", fault),
        Check(
            name="zones_with_replicas_before",
            measured=len(zones_used),
            target=f">= {spread_target}",
            ok=len(zones_used) >= spread_target,
            note=""
            if len(zones_used) >= spread_target
            else f"placement {before}: one zone holds {lost}/{replicas} replicas",
        ),
        Check(
            name="sla_recovered_s",
            measured=recovery if recovery is not None else "never",
            target=z.recovery_s,
            unit="s",
            ok=recovery is not None and recovery <= z.recovery_s,
            note=_breach_note(windows, t_fault),
        ),
        Check(
            name="replicas_ready_again_s",
            measured=restored_s if restored_s is not None else "never",
            target=z.recovery_s,
            unit="s",
            ok=restored_s is not None and restored_s <= z.recovery_s,
            note=""
            if restored_s is not None
            else f"{len(pending_after)} pods stranded Pending: "
            + ("; ".join(pending_reasons) or str(pending_after)),
        ),
        Check(
            name="pending_after",
            measured=len(pending_after),
            target=0,
            ok=not pending_after,
            note="; ".join(pending_reasons),
        ),
        Check(
            name="error_budget_burned",
            measured=budget["burned"],
            target="<= 1.0",
            ok=budget["burned"] is not None and budget["burned"] <= 1.0,
            note=f"{budget['errors']} failed of {budget['requests']} (allowed "
            f"{budget['allowed_errors']}; {budget['budget_minutes_per_30d']} min/30d at "
            f"{prof.slo.availability})",
        ),
    ]


def _survivors_capacity(ctx: ScenarioContext, survivors: int) -> dict[str, Any]:
    """What the replicas outside the lost zone can carry at the capacity measured in this run
    (the capacity scenario), beside the baseline they must carry: evidence for the verdict."""
    cap = ctx.measured.get("capacity")
    rps = getattr(cap, "rps", None)
    if rps is None:
        return {"survivors_capacity": "capacity not measured in this run"}
    carry = round(rps * survivors, 2)
    base = ctx.profile.load.baseline_rps
    return {
        "survivors_capacity_rps": carry,
        "survivors_capacity": f"{survivors} replica(s) x {rps:g} req/s = {carry:g} req/s vs "
        f"{base:g} req/s baseline" + ("" if carry >= base else ": short until replacements serve"),
    }


def handle_end(handle: Any, t_fault: float, fault_at_s: float, duration: float) -> float:
    """When the load run ends (epoch s): its start time, else inferred from the fault time."""
    started = getattr(handle, "started_at", None) or (t_fault - fault_at_s)
    return float(started) + duration


def sla_windows(ctx: ScenarioContext, result: Any, t_fault: float) -> list[dict[str, Any]]:
    """The run's `slo.window_s` windows as harness.sla evaluates them, placed against the fault."""
    out: list[dict[str, Any]] = []
    for w in evaluate(result, ctx.profile.slo, check_rate=False).windows:
        ws = w.stats
        out.append(
            {
                "t0": round(ws.t0 - result.started_at, 2),
                "t1": round(ws.t1 - result.started_at, 2),
                "epoch0": ws.t0,
                "after_fault": ws.t0 >= t_fault,
                "contains_fault": ws.t0 <= t_fault < ws.t1,
                "requests": ws.requests,
                "errors": ws.errors,
                "dropped": ws.dropped,
                "availability": ws.availability,
                "latency_ms": ws.latency_ms,
                "sla_met": not w.breached,
                "breaches": w.reasons,
            }
        )
    return out


def recovery_after(windows: list[dict[str, Any]], t_fault: float) -> float | None:
    """Seconds from the fault to the start of the first window after which every window met the
    SLA."""
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
    return "breached windows (s from start): " + ", ".join(
        f"{w['t0']:g}-{w['t1']:g}" for w in bad[:6]
    )


# --------------------------------------------------------------------------------------------
# drain through the PDB, with long requests in flight on the drained zone


def drain_phase(
    ctx: ScenarioContext, backend: Backend, faults: list[FaultRecord], meas: dict[str, Any]
) -> list[Check]:
    checks: list[Check] = []
    fail_zone = meas.get("fail_zone")
    if fail_zone:
        faults.append(backend.restore_zone(fail_zone))
        ready, msg = common.wait_rollout(
            backend, common.spec_replicas(ctx.bundle), start_timeout_s(ctx)
        )
        checks.append(
            Check(
                name="ready_after_zone_restored",
                measured=ready,
                target=True,
                ok=ready,
                note=f"{fail_zone} back: {msg}"
                + ("" if ready else f"; {common.rollout_failure_summary(backend)}"),
            )
        )
        if not ready:
            return checks
    placement = common.zone_placement(backend.pods(), only_ready=True)
    candidates = [
        (len(p), zz) for zz, p in placement.items() if zz not in (fail_zone, "<unscheduled>")
    ]
    if not candidates:
        return [
            *checks,
            Check(
                name="drain_fault_landed",
                measured=False,
                target=True,
                ok=False,
                note=f"no other zone with a Ready replica to drain (placement {placement})",
            ),
        ]
    zone = max(candidates)[1]
    targets = placement[zone]
    timing = drain_timing(ctx)
    plan = {pod: _inflight_plan(backend, pod, timing) for pod in targets}
    n = sum(len(bodies) for bodies in plan.values())
    with cf.ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        inflight = [
            pool.submit(_long_request, backend, pod, body)
            for pod, bodies in plan.items()
            for body in bodies
        ]
        time.sleep(0.3)  # let them be accepted before the eviction
        fault = backend.drain_zone(zone, timeout_s=DRAIN_TIMEOUT_S)
        faults.append(fault)
        outcomes = [f.result() for f in inflight]
    accepted = [o for o in outcomes if o["outcome"] not in REFUSED]
    lost = [o for o in accepted if o["outcome"] != "served"]
    # the drain was exercised only if accepted work was still running when SIGTERM came
    sigterm_at = fault.started_at + timing["pre_stop_s"]
    running_at_sigterm = [o for o in accepted if o["ended_at"] > sigterm_at]
    by_outcome = dict(Counter(o["outcome"] for o in outcomes))
    meas["drain"] = {
        "zone": zone,
        "pods": targets,
        "record": fault.model_dump(),
        "timing": timing,
        "outcomes": by_outcome,
        "requests": outcomes,
    }
    checks.append(
        Check(
            name="drain_completed",
            measured=fault.landed,
            target=True,
            ok=fault.landed,
            note=(fault.detail or _blocked(fault))
            if not fault.landed
            else f"evicted {fault.affected}",
        )
    )
    if fault.landed:  # a drain that evicted nothing had nothing to exercise
        checks.append(
            Check(
                name="drain_exercised",
                measured=len(running_at_sigterm),
                target="> 0 in flight at SIGTERM",
                ok=bool(running_at_sigterm),
                inconclusive=not running_at_sigterm,
                note=f"{len(running_at_sigterm)} of {len(accepted)} accepted requests were still "
                f"running {timing['pre_stop_s']:g}s (preStop) after the eviction; planned "
                f"{timing['work_s']:g}s of work each",
            )
        )
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(by_outcome.items()))
    checks.append(
        Check(
            name="drain_lost_requests",
            measured=len(lost),
            target=0,
            ok=not lost,
            note=(
                f"{len(lost)}/{len(accepted)} accepted in-flight requests lost during the drain "
                f"({summary}; first: {lost[0]['error']})"
            )
            if lost
            else f"{len(accepted)} accepted in-flight requests finished ({summary})",
        )
    )
    return checks


def _blocked(fault: FaultRecord) -> str:
    if fault.evictions_blocked:
        return (
            f"the disruption budget refused the eviction of {', '.join(fault.evictions_blocked)} "
            f"({fault.eviction_429s} x HTTP 429)"
        )
    return "the disruption budget blocked the drain"


def drain_timing(ctx: ScenarioContext) -> dict[str, float]:
    """How long each in-flight request should work: past the SIGTERM (after preStop) and well
    past a grace period shorter than the drain, yet inside what a correct drain allows
    (preStop + the service's drain timeout), so a cut is the manifest's fault by construction."""
    pod_spec = ctx.bundle.deployment.get("spec", {}).get("template", {}).get("spec", {})
    grace = float(pod_spec.get("terminationGracePeriodSeconds", 30))
    sleep = ((common.main_container(ctx.bundle).get("lifecycle") or {}).get("preStop") or {}).get(
        "sleep"
    ) or {}
    pre_stop = float(sleep.get("seconds", 0))
    drain, _ = common.service_setting(ctx.bundle, "drain_timeout_s")
    return {
        "grace_s": grace,
        "pre_stop_s": pre_stop,
        "drain_timeout_s": drain,
        "work_s": round(pre_stop + DRAIN_WORK_SHARE * drain, 2),
        "max_tokens_limit": common.service_setting(ctx.bundle, "max_tokens_limit")[0],
    }


def _inflight_plan(backend: Backend, pod: str, timing: dict[str, float]) -> list[dict[str, Any]]:
    """IN_FLIGHT_PER_POD requests for `pod` whose generation lasts about timing['work_s'].

    Calibrated on the pod with two timed rounds of as many requests (CALIBRATION_TOKENS short
    and long), so the fixed cost (HTTP, prefill) and the per-token cost are told apart."""
    prompt = "Drain me gently. " * 2  # short: the positions go to the generation
    url = backend.pod_url(pod).rstrip("/") + "/v1/completions"

    def timed_batch(tokens: int) -> tuple[float, int]:
        body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0.0}
        t0 = time.time()
        with cf.ThreadPoolExecutor(max_workers=IN_FLIGHT_PER_POD) as pool:
            generated = list(
                pool.map(lambda _: _completion_tokens(url, body), range(IN_FLIGHT_PER_POD))
            )
        return time.time() - t0, min(generated, default=0)

    short, long_ = CALIBRATION_TOKENS
    t_short, _ = timed_batch(short)
    t_long, produced = timed_batch(long_)
    per_token = max(1e-4, (t_long - t_short) / (long_ - short))
    fixed = max(0.0, t_short - short * per_token)
    tokens = int(
        min(timing["max_tokens_limit"], max(1, math.ceil((timing["work_s"] - fixed) / per_token)))
    )
    timing.update(
        per_token_s=round(per_token, 5),
        fixed_s=round(fixed, 3),
        max_tokens=tokens,
        calibration_tokens=produced,
        expected_work_s=round(fixed + tokens * per_token, 2),
    )
    return [{"prompt": prompt, "max_tokens": tokens, "temperature": 0.0}] * IN_FLIGHT_PER_POD


def _completion_tokens(url: str, body: dict[str, Any]) -> int:
    try:
        r = httpx.post(url, json=body, timeout=DRAIN_TIMEOUT_S)
        return int(r.json()["usage"]["completion_tokens"]) if r.status_code == 200 else 0
    except (httpx.HTTPError, ValueError, KeyError):
        return 0


def _long_request(backend: Backend, pod: str, body: dict[str, Any]) -> dict[str, Any]:
    """One long request straight to `pod`, classified: served; refused before acceptance (a
    429/503, a refused connection, or a connect timeout: not lost); accepted then lost (cut:
    the connection dropped with no answer; timed out waiting for the answer; or an error status)."""
    url = backend.pod_url(pod).rstrip("/") + "/v1/completions"
    out: dict[str, Any] = {"pod": pod, "outcome": "", "error": "", "status": None}
    t0 = time.time()
    try:
        r = httpx.post(url, json=body, timeout=DRAIN_TIMEOUT_S)
        out["status"] = r.status_code
        if r.status_code == 200:
            out["outcome"] = "served"
        elif r.status_code in (429, 503):
            out.update(outcome="refused_status", error=f"HTTP {r.status_code}")
        else:
            out.update(outcome="accepted_then_failed", error=f"HTTP {r.status_code}")
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
        kind = (
            "refused_connection"
            if isinstance(err, httpx.ConnectError)
            else "timed_out_before_acceptance"
        )
        out.update(outcome=kind, error=f"{type(err).__name__}: {err}")
    except httpx.TimeoutException as err:  # read/write timeout: sent, no answer in time
        out.update(
            outcome="accepted_then_timed_out",
            error=f"{type(err).__name__} after {DRAIN_TIMEOUT_S:g}s",
        )
    except httpx.HTTPError as err:  # RemoteProtocolError, ReadError: the connection was cut
        out.update(outcome="accepted_then_cut", error=f"{type(err).__name__}: {err}")
    out["ended_at"] = time.time()
    out["seconds"] = round(out["ended_at"] - t0, 2)
    return out
