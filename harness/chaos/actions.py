"""chaostoolkit actions. Each proves it landed (what it killed, drained or delivered) and fails
the activity (ActivityFailed) when it did not; every fault is kept in `gameday/faults.json`.

Actions used as rollbacks (`restore_zone`, `stop_background_load`, `release_memory`) are safe
to run when nothing was deployed or nothing is left to undo: they report that and succeed.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed

from harness.backends.base import BackendError, RolloutRestarter
from harness.backends.observe import FaultKind, FaultRecord
from harness.chaos.session import GameDay, active, current
from harness.load import LoadSpec, start_load

MAX_BACKGROUND_S = 1800.0


def start_background_load(
    rate_rps: float | None = None, duration_s: float = 600.0
) -> dict[str, Any]:
    """Open-loop load at the profile's baseline (or `rate_rps`) until stopped (at most
    `duration_s`)."""
    gd = current()
    if gd.load is not None and gd.load.running:
        raise ActivityFailed("background load is already running")
    rate = float(rate_rps or gd.profile.load.baseline_rps)
    spec = LoadSpec.from_profile(
        gd.profile,
        gd.backend.service_url(),
        rate_rps=rate,
        duration_s=min(float(duration_s), MAX_BACKGROUND_S),
    )
    gd.load = start_load(spec, gd.out_dir / "background")
    return {
        "rate_rps": spec.rate_rps,
        "duration_s": spec.duration_s,
        "target": spec.target,
        "started_at": time.time(),
    }


def stop_background_load() -> dict[str, Any]:
    """Stop the background load; fails if it delivered nothing (the fault ran against no
    traffic)."""
    gd = active()
    if gd is None or gd.load is None:
        return {"stopped": False, "reason": "no background load running"}
    handle, gd.load = gd.load, None
    result = handle.stop() if handle.running else handle.wait()
    gd.load_results.append({"label": "background", **result.model_dump(exclude={"timeline"})})
    gd.keep_load(handle.out_dir, "background")
    if result.requests == 0:
        raise ActivityFailed("the background load delivered no request")
    return {
        "delivered": True,
        "requests": result.requests,
        "ok": result.ok,
        "errors": result.errors,
        "dropped": result.dropped,
        "achieved_rate": result.achieved_rate,
        "valid": result.valid,
        "latency_ms": result.latency_ms,
        "evidence": "gameday/load-background.json",
    }


def zone_outage(zone: str | None = None) -> dict[str, Any]:
    """Lose a zone (default: the one holding most Ready pods): its pods die, its nodes go
    NotReady."""
    gd = current()
    target = zone or _busiest_zone(gd)
    gd.lost_zones.append(target)  # before the fault: the rollback restores it even if this fails
    return gd.record(_backend_call(gd.backend.zone_outage, target))


def restore_zone(zone: str | None = None) -> dict[str, Any]:
    """Bring back a lost zone (default: every zone this game day lost). Rollback-safe."""
    gd = active()
    if gd is None:
        return {"restored": [], "reason": "nothing deployed"}
    zones = [zone] if zone else list(dict.fromkeys(gd.lost_zones))
    out = []
    for z in zones:
        out.append(gd.record(_backend_call(gd.backend.restore_zone, z)))
        if z in gd.lost_zones:
            gd.lost_zones.remove(z)
    return {"restored": zones, "faults": out}


def kill_replica(pod: str | None = None) -> dict[str, Any]:
    """Delete one Ready pod without grace (default: the oldest); the Deployment replaces it."""
    gd = current()
    name = pod or _ready_pod(gd, oldest=True, what="kill")
    fault = _backend_call(gd.backend.delete_pod, name, grace_period_s=0)
    if fault.landed:  # prove it: the pod is gone or terminating
        gone = _eventually(
            lambda: all(
                p.name != name or p.deletionTimestamp is not None or not p.ready
                for p in gd.backend.pods()
            ),
            15.0,
        )
        if not gone:
            fault = fault.model_copy(
                update={"landed": False, "detail": f"{name} still Ready 15 s after deletion"}
            )
    return gd.record(fault)


def rollout_restart(timeout_s: float = 300.0) -> dict[str, Any]:
    """`kubectl rollout restart`: every pod replaced following spec.strategy (maxSurge /
    maxUnavailable); fails the activity when the rollout does not complete within `timeout_s`."""
    gd = current()
    backend = gd.backend
    if not isinstance(backend, RolloutRestarter):
        raise ActivityFailed(f"the {backend.name} backend does not support rollout_restart")
    return gd.record(_backend_call(backend.rollout_restart, timeout_s=float(timeout_s)))


def memory_pressure(mb: int = 256, pod: str | None = None) -> dict[str, Any]:
    """Make one replica hold `mb` MiB more (the deployment needs gauntlet_debug_endpoints: true).

    The activity's output is the fault record plus `mb`."""
    gd = current()
    name = pod or _ready_pod(gd, oldest=False, what="put under memory pressure")
    started = time.time()
    try:
        r = httpx.post(
            f"{gd.backend.pod_url(name)}/debug/allocate", params={"mb": int(mb)}, timeout=30
        )
        if r.status_code == 404:
            landed, detail = (
                False,
                (
                    "HTTP 404: the debug endpoints are off; set gauntlet_debug_endpoints "
                    "(env GAUNTLET_DEBUG_ENDPOINTS=true) in the experiment's configuration"
                ),
            )
        else:
            landed, detail = (
                r.status_code == 200,
                f"{int(mb)} MiB: HTTP {r.status_code}: {r.text[:200]}",
            )
    except httpx.HTTPError as err:  # an OOM kill mid-request also lands here
        landed, detail = (
            True,
            f"{int(mb)} MiB: connection lost during allocation ({err}); see the OOM evidence",
        )
    if landed:
        gd.pressed_pods.append(name)
    fault = FaultRecord(
        kind=FaultKind.MEMORY_PRESSURE,
        target=name,
        started_at=started,
        ended_at=time.time(),
        affected=[name] if landed else [],
        landed=landed,
        detail=detail,
    )
    return {**gd.record(fault), "mb": int(mb)}


def release_memory() -> dict[str, Any]:
    """Release what `memory_pressure` made replicas hold (DELETE /debug/allocate). Rollback-safe."""
    gd = active()
    if gd is None:
        return {"released": [], "reason": "nothing deployed"}
    released: list[str] = []
    gone: list[str] = []
    for name in dict.fromkeys(gd.pressed_pods):
        try:
            r = httpx.delete(f"{gd.backend.pod_url(name)}/debug/allocate", timeout=10)
            (released if r.status_code == 200 else gone).append(name)
        except (httpx.HTTPError, BackendError):
            gone.append(name)  # the replica died (OOM-killed, replaced): nothing held any more
    gd.pressed_pods.clear()
    return {"released": released, "not_reachable": gone}


def spike(factor: float | None = None, duration_s: float = 30.0) -> dict[str, Any]:
    """Open-loop traffic at `factor` x baseline for `duration_s` (blocking); fails if not delivered.

    The activity's output is the fault record plus the load's `requests`, `ok` and `errors`
    (the whole result is in the game day's measurements)."""
    gd = current()
    f = float(factor or gd.profile.spike.factor)
    rate = gd.profile.load.baseline_rps * f
    spec = LoadSpec.from_profile(
        gd.profile, gd.backend.service_url(), rate_rps=rate, duration_s=float(duration_s)
    )
    n = sum(1 for x in gd.faults if x.kind == FaultKind.TRAFFIC_SPIKE)
    out = gd.out_dir / f"spike-{n}"
    started = time.time()
    result = start_load(spec, out).wait()
    gd.keep_load(out, f"spike-{n}")
    gd.load_results.append({"label": f"spike-{n}", **result.model_dump(exclude={"timeline"})})
    delivered = result.valid and result.requests > 0
    fault = FaultRecord(
        kind=FaultKind.TRAFFIC_SPIKE,
        target=f"{f:g}x baseline ({rate:g} req/s)",
        started_at=started,
        ended_at=time.time(),
        affected=[f"{result.requests} requests at {result.achieved_rate:.1f} req/s"],
        landed=delivered,
        detail=("generator did not keep the schedule: " + "; ".join(result.invalid_reasons))
        if not delivered
        else (
            f"ok {result.ok}, errors {dict(Counter(result.errors))}, "
            f"p90 {result.latency_ms.get('p90')} ms"
        ),
    )
    return {
        **gd.record(fault),
        "requests": result.requests,
        "ok": result.ok,
        "errors": dict(result.errors),
    }


def wait_for_ready_replicas(
    timeout_s: float = 120.0, replicas: int | None = None
) -> dict[str, Any]:
    """Wait until the Deployment has its replicas Ready again (recovery); fails on timeout."""
    gd = current()
    t0 = time.time()
    try:
        status = gd.backend.wait_ready(replicas=replicas, timeout_s=float(timeout_s))
    except BackendError as err:
        pending = [p.name for p in gd.backend.pods() if p.phase == "Pending"]
        raise ActivityFailed(
            f"not recovered within {timeout_s:g} s: {err}"
            + (f"; Pending pods: {pending}" if pending else "")
        ) from None
    return {
        "recovered_after_s": round(time.time() - t0, 2),
        "ready": status.readyReplicas,
        "spec_replicas": gd.backend.deployment().spec.replicas,
    }


def _backend_call(fn: Any, *args: Any, **kwargs: Any) -> FaultRecord:
    try:
        record: FaultRecord = fn(*args, **kwargs)
        return record
    except BackendError as err:
        raise ActivityFailed(str(err)) from None


def _ready_pod(gd: GameDay, oldest: bool, what: str) -> str:
    ready = sorted(
        (p for p in gd.backend.pods() if p.ready and p.deletionTimestamp is None),
        key=lambda p: p.creationTimestamp,
    )
    if not ready:
        raise ActivityFailed(f"no Ready pod to {what}")
    return ready[0].name if oldest else ready[-1].name


def _busiest_zone(gd: GameDay) -> str:
    pods = [p for p in gd.backend.pods() if p.ready and p.zone]
    if not pods:
        raise ActivityFailed("no Ready pod with a zone: a zone outage would not land")
    return str(Counter(p.zone for p in pods).most_common(1)[0][0])


def _eventually(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())
