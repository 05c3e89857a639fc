"""cold-start: N starts of one replica, creation -> Ready, phase by phase; p50/p95/max vs target.

Phases from the pod's own timestamps (Kubernetes' vocabulary): creation -> PodScheduled ->
container started -> startup probe success (the `started` flip, observed by polling) -> Ready;
plus the service's own `gauntlet:model_load_seconds{phase}` (imports, weights, warm-up).
The HPA is removed and the Deployment fixed at one replica so each start is alone on the
machine; starts 2..N scale 0 -> 1 (a fresh pod each time, like a scale-out).
The samples go to `ctx.measured["cold_start_s"]` for probe-timing.
"""

from __future__ import annotations

import time
from typing import Any

from harness.backends.base import Backend, BackendError
from harness.backends.observe import Pod
from harness.run import evidence
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.servers.kinds import REFERENCE, ServerKind
from harness.verdict import Check, Verdict

NAME = "cold-start"
#: every check this scenario can report, in the order it reports them (a pytest result each)
CHECKS = (
    "starts_ready",
    "probe_kills_during_start",
    "p95_s",
    "max_s",
)
POLL_S = 0.1
RESTART_LOOP = 3  # probe kills of one pod's container that make its start a restart loop
PHASES = ("scheduling", "init_containers", "container_start", "startup_probe", "readiness", "total")


def start_timeout_s(ctx: ScenarioContext) -> float:
    cs = ctx.profile.cold_start
    return min(300.0, 2 * (cs.max_s or 2 * cs.p95_s) + 10)


def run(ctx: ScenarioContext) -> Verdict:
    cs = ctx.profile.cold_start
    bundle = common.without_hpa(ctx.bundle, replicas=1)
    timeout_s = start_timeout_s(ctx)
    starts: list[dict[str, Any]] = []
    seen: set[str] = set()
    with ctx.deploy(bundle, wait=False) as backend:
        for i in range(cs.starts):
            if i > 0:
                _scale_to_zero(backend, timeout_s)
                backend.scale(1)
            rec = observe_start(backend, seen, timeout_s, ctx.server)
            rec["index"] = i + 1
            starts.append(rec)
            ctx.log(f"cold-start {i + 1}/{cs.starts}: {_describe(rec)}")
            if not rec["ready"]:
                break  # a start that never gets Ready: the rest would only repeat it
    return verdict(ctx, starts)


def verdict(ctx: ScenarioContext, starts: list[dict[str, Any]]) -> Verdict:
    cs = ctx.profile.cold_start
    samples = [s["phases"]["total"] for s in starts if s["ready"]]
    ctx.measured["cold_start_s"] = samples
    phase_stats = {
        ph: common.summary(
            [s["phases"][ph] for s in starts if s["ready"] and s["phases"].get(ph) is not None]
        )
        for ph in PHASES
    }
    service_phases: dict[str, list[float]] = {}
    for s in starts:
        for ph, v in s.get("service_phases", {}).items():
            service_phases.setdefault(ph, []).append(v)
    stats = common.summary(samples)
    kills = sum(s["probe_kills"] for s in starts)
    files = [
        ctx.write_json(
            evidence.COLD_START,
            {
                "samples_s": samples,
                "summary": stats,
                "phases": phase_stats,
                "service_phases": {k: common.summary(v) for k, v in service_phases.items()},
                "starts": starts,
                "targets": {"p95_s": cs.p95_s, "max_s": cs.max_s, "starts": cs.starts},
            },
        )
    ]
    ready = len(samples)
    checks = [
        Check(
            name="starts_ready",
            measured=ready,
            target=cs.starts,
            ok=ready == cs.starts,
            note="" if ready == cs.starts else _describe(next(s for s in starts if not s["ready"])),
        ),
        Check(
            name="probe_kills_during_start",
            measured=kills,
            target=0,
            ok=kills == 0,
            note="containers killed by startup/liveness probes while loading" if kills else "",
        ),
        Check(
            name="p95_s",
            measured=stats["p95"],
            target=cs.p95_s,
            unit="s",
            ok=stats["p95"] is not None and stats["p95"] <= cs.p95_s,
        ),
    ]
    if cs.max_s is not None:
        checks.append(
            Check(
                name="max_s",
                measured=stats["max"],
                target=cs.max_s,
                unit="s",
                ok=stats["max"] is not None and stats["max"] <= cs.max_s,
            )
        )
    measurements = {c.name: c.measured for c in checks}
    measurements.update(
        {
            "p50_s": stats["p50"],
            "samples_s": samples,
            "phases_p50_s": {ph: st["p50"] for ph, st in phase_stats.items()},
            "phases_p95_s": {ph: st["p95"] for ph, st in phase_stats.items()},
            "service_phases_p50_s": {
                k: common.summary(v)["p50"] for k, v in service_phases.items()
            },
            "server": ctx.server.name,
            "service_phases_source": ctx.server.load_phases_source,
        }
    )
    return Verdict.from_checks(
        NAME,
        ctx.profile.name,
        checks,
        measurements=measurements,
        evidence=files,
        caveats=list(ctx.deviations),
    )


# --------------------------------------------------------------------------------------------


def _live(backend: Backend) -> list[Pod]:
    return [
        p
        for p in backend.pods()
        if p.deletionTimestamp is None and p.phase not in ("Succeeded", "Failed")
    ]


def _scale_to_zero(backend: Backend, timeout_s: float) -> None:
    backend.scale(0)
    backend.wait_until(
        lambda: not backend.pods(), timeout_s=timeout_s, poll_s=0.2, what="all pods gone"
    )


def observe_start(
    backend: Backend, seen: set[str], timeout_s: float, server: ServerKind = REFERENCE
) -> dict[str, Any]:
    """Follow one new pod from creation to Ready (or to the timeout), polling for the startup
    flip."""
    deadline = time.monotonic() + timeout_s
    pod: Pod | None = None
    started_flip: float | None = None
    while time.monotonic() < deadline:
        if pod is None:
            fresh = [p for p in _live(backend) if p.name not in seen]
            if fresh:
                pod = min(fresh, key=lambda p: p.creationTimestamp)
                seen.add(pod.name)
        else:
            pod = next((p for p in backend.pods() if p.name == pod.name), pod)
            if started_flip is None and any(cs.started for cs in pod.containerStatuses):
                started_flip = time.time()
            if pod.ready:
                break
            if pod.restarts >= RESTART_LOOP and _probe_killed(backend, pod.name):
                break  # a restart loop: waiting out the timeout would only repeat it
        time.sleep(POLL_S)
    if pod is None:
        return {
            "pod": None,
            "ready": False,
            "phases": {},
            "probe_kills": 0,
            "restarts": 0,
            "reason": f"no pod was created within {timeout_s:.0f}s",
        }
    rec = start_record(pod, started_flip)
    kills = common.probe_kills(e for e in backend.events() if e.involvedObject.name == pod.name)
    rec["probe_kills"] = len(kills["startup"]) + len(kills["liveness"])
    if rec["ready"]:
        metrics = common.pod_metrics(backend, pod.name)
        rec["service_phases"] = server.load_phases(metrics, backend.pod_log(pod.name))
    elif pod.restarts >= RESTART_LOOP and rec["probe_kills"]:
        rec["reason"] = (
            f"pod {pod.name} in a restart loop: its container was killed by probes "
            f"{rec['probe_kills']} times while starting; " + _failure(backend, pod)
        )
    else:
        rec["reason"] = f"pod {pod.name} not Ready within {timeout_s:.0f}s: " + _failure(
            backend, pod
        )
    return rec


def _probe_killed(backend: Backend, pod: str) -> bool:
    kills = common.probe_kills(e for e in backend.events() if e.involvedObject.name == pod)
    return bool(kills["startup"] or kills["liveness"])


def start_record(pod: Pod, started_flip: float | None) -> dict[str, Any]:
    """Phase durations (s) from one pod's timestamps; the startup flip time comes from polling."""
    created = pod.creationTimestamp
    scheduled = pod.first_transition("PodScheduled")
    initialized = pod.first_transition("Initialized") if pod.initContainerStatuses else scheduled
    running = next(
        (cs.state.running.startedAt for cs in pod.containerStatuses if cs.state.running), None
    )
    ready_at = pod.first_transition("Ready") if pod.ready else None
    if started_flip is not None and ready_at is not None:
        started_flip = min(started_flip, ready_at)  # polling lags; Ready cannot precede started

    def span(a: float | None, b: float | None) -> float | None:
        return round(b - a, 3) if a is not None and b is not None else None

    phases = {
        "scheduling": span(created, scheduled),
        "init_containers": span(scheduled, initialized),
        "container_start": span(initialized, running),
        "startup_probe": span(running, started_flip),
        "readiness": span(started_flip, ready_at),
        "total": span(created, ready_at),
    }
    return {
        "pod": pod.name,
        "zone": pod.zone,
        "ready": ready_at is not None,
        "restarts": pod.restarts,
        "timestamps": {
            "created": created,
            "scheduled": scheduled,
            "initialized": initialized,
            "container_started": running,
            "startup_succeeded": started_flip,
            "ready": ready_at,
        },
        "phases": phases,
    }


def _failure(backend: Backend, pod: Pod) -> str:
    try:
        return common.rollout_failure_summary(backend)
    except BackendError as err:  # pragma: no cover - observation failing is itself evidence
        return f"observation failed: {err}"


def _describe(rec: dict[str, Any]) -> str:
    if not rec["ready"]:
        return rec.get("reason", "not ready")
    ph = rec["phases"]
    parts = ", ".join(f"{k} {v:.2f}s" for k, v in ph.items() if v is not None and k != "total")
    return f"{rec['pod']} Ready in {ph['total']:.2f}s ({parts})"
