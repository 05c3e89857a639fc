"""probe-timing: are the probes right for the measured cold start, full load, and a hang?

1. Model: the container's startup budget (the probe model, or the kubelet formula
   `initialDelay + (failureThreshold - 1) x period` of the probe that gates start) against the
   measured cold-start p95 (from the cold-start scenario of this run, else the profile's
   declared value) x margin.
2. Rollout: no container killed by a startup/liveness probe while loading.
3. Full load (profile slo.rate_rps) with one replica replaced mid-run: no liveness kill, no
   request answered 503 "not ready", and `gauntlet:requests_while_unready_total` summed over
   every pod stays 0 (traffic reached only Ready replicas).
4. Hang (backend.hang_pod) under load: the replica leaves the endpoints (Ready=False) before
   the liveness kill, and is killed within profile.probes.hang_detect_s.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from harness import prom
from harness.backends.base import Backend
from harness.backends.observe import FaultRecord
from harness.manifests.bundle import ManifestBundle
from harness.models import prober as probes
from harness.run import evidence
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.cold_start import start_timeout_s
from harness.verdict import Check, Verdict

NAME = "probe-timing"
#: every check this scenario can report, in the order it reports them (a pytest result each)
CHECKS = (
    "startup_budget_s",
    "kills_during_start",
    "rollout_ready",
    "load_valid",
    "liveness_kills_under_load",
    "restarts_under_load",
    "requests_while_unready",
    "not_ready_503",
    "replacement_fault_landed",
    "hang_fault_landed",
    "hang_detected_s",
    "hung_replica_unready_before_kill",
)
#: the hung replica must leave the endpoints at least this long before the liveness kill
UNREADY_LEAD_S = 1.0


def run(ctx: ScenarioContext) -> Verdict:
    checks: list[Check] = []
    faults: list[FaultRecord] = []
    measurements: dict[str, Any] = {}

    model = model_checks(ctx, ctx.bundle)
    checks += model.pop("checks")
    measurements["model"] = model
    replicas = common.spec_replicas(ctx.bundle)

    with ctx.deploy(wait=False) as backend:
        t_deploy = time.time()
        failed = common.rollout_ready_check(backend, replicas, start_timeout_s(ctx) * 2)
        kills = common.probe_kills(backend.events(since=t_deploy))
        n_kills = len(kills["startup"]) + len(kills["liveness"])
        checks.append(
            Check(
                name="kills_during_start",
                measured=n_kills,
                target=0,
                ok=n_kills == 0,
                note="; ".join(e.message for e in (kills["startup"] + kills["liveness"])[:3]),
            )
        )
        if failed:
            checks.append(failed)
            return _finish(ctx, checks, faults, measurements)

        checks += full_load_phase(ctx, backend, faults, measurements)
        checks += hang_phase(ctx, backend, faults, measurements)
    return _finish(ctx, checks, faults, measurements)


def _finish(
    ctx: ScenarioContext,
    checks: list[Check],
    faults: list[FaultRecord],
    measurements: dict[str, Any],
) -> Verdict:
    return common.finish(
        ctx, NAME, checks, faults, measurements, loads=(evidence.LOAD_RUN, evidence.HANG_LOAD_RUN)
    )


# --------------------------------------------------------------------------------------------
# 1. the model


def model_checks(ctx: ScenarioContext, bundle: ManifestBundle) -> dict[str, Any]:
    """The kubelet probe model on the measured (else declared) cold-start distribution."""
    measured = list(ctx.measured.get("cold_start_s") or [])
    if measured:
        p95, source = (
            common.percentile(measured, 95),
            f"measured ({len(measured)} starts, cold-start)",
        )
    else:
        declared = ctx.profile.cold_start.declared_p95_s or ctx.profile.cold_start.p95_s
        p95, source = declared, "declared in the profile (no cold-start measurement in this run)"
    assert p95 is not None
    need = p95 * ctx.profile.probes.margin
    analysis = probes.analyze(
        bundle.deployment, common.main_container(bundle).get("name"), sorted({*measured, p95, need})
    )
    budget = analysis.kill_earliest_s
    out: dict[str, Any] = {
        "cold_start_p95_s": p95,
        "cold_start_source": source,
        "required_budget_s": round(need, 3),
        "probe_model": analysis.to_dict(),
    }
    ok = budget is None or budget >= need
    out["checks"] = [
        Check(
            name="startup_budget_s",
            measured=budget if budget is not None else "no probe can kill during start",
            target=f">= {need:.1f}",
            unit="s",
            ok=ok,
            note=(
                f"the {analysis.gate} probe kills a container still loading after {budget:.1f}s; "
                f"the cold start is p95 {p95:.1f}s x margin {ctx.profile.probes.margin} ({source})"
            )
            if not ok
            else source,
        )
    ]
    if analysis.hang_detect_s is not None:
        out["model_hang_detect_s"] = list(analysis.hang_detect_s)
    return out


# --------------------------------------------------------------------------------------------
# 3. full load with a replacement


class UnreadyCounter:
    """Polls every pod's `gauntlet:requests_while_unready_total`; keeps the last value per pod.

    Polling (not one scrape at the end) keeps the count of replicas that exit during the run.
    """

    def __init__(self, backend: Backend, metric: str | None, period_s: float = 1.0) -> None:
        self.backend = backend
        self.metric = metric
        self.period_s = period_s
        self.last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="unready-poll", daemon=True)

    def _loop(self) -> None:
        while self.metric and not self._stop.is_set():
            self.poll()
            self._stop.wait(self.period_s)

    def poll(self) -> None:
        if not self.metric:
            return
        for p in self.backend.pods():
            if p.podIP is None and not p.containerStatuses:
                continue
            v = prom.total(common.pod_metrics(self.backend, p.name), self.metric)
            if v is not None:
                self.last[p.name] = max(self.last.get(p.name, 0.0), v)

    def __enter__(self) -> UnreadyCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()

    @property
    def total(self) -> float:
        return sum(self.last.values())


def full_load_phase(
    ctx: ScenarioContext, backend: Backend, faults: list[FaultRecord], measurements: dict[str, Any]
) -> list[Check]:
    prof = ctx.profile
    duration = prof.load.duration_s
    spec = common.load_spec(
        ctx, backend, rate_rps=prof.slo.rate_rps, duration_s=duration, shape=None
    )
    t0 = time.time()
    restarts_before = {p.name: p.restarts for p in backend.pods()}
    metric = ctx.server.unready_metric
    with UnreadyCounter(backend, metric) as unready, common.background_load(ctx, spec) as handle:
        time.sleep(duration / 3)
        victim = _a_ready_pod(backend)
        if victim is not None:
            faults.append(backend.delete_pod(victim))
        result = handle.wait(timeout=duration + spec.timeout_s + 120)
    replaced_ok, _ = common.wait_rollout(
        backend, common.spec_replicas(ctx.bundle), start_timeout_s(ctx)
    )
    kills = common.probe_kills(backend.events(since=t0))
    restarts = sum(max(0, p.restarts - restarts_before.get(p.name, 0)) for p in backend.pods())
    not_ready_503 = common.count_status(result, 503)
    budget = common.error_budget(int(result.requests + result.dropped), _errors(result), prof.slo)
    throttling = common.cpu_throttling(backend.resource_samples(since=t0))
    measurements["full_load"] = {
        "rate_rps": prof.slo.rate_rps,
        "duration_s": duration,
        "latency_ms": result.latency_ms,
        "errors": result.errors,
        "error_budget": budget,
        **common.stream_summary(result, prof.slo),
        "replaced_pod": victim,
        "replacement_ready": replaced_ok,
        "unready_by_pod": unready.last,
        **throttling,
    }
    kill_note = "; ".join(e.message for e in kills["liveness"][:3])
    if (
        kills["liveness"] and throttling
    ):  # a probe answered late because its pod ran out of CPU quota
        kill_note += (
            f" (CPU throttled in {throttling['cpu_throttled_ratio']:.0%} of CFS periods, "
            f"worst {throttling['cpu_throttled_worst_pod']} "
            f"{throttling['cpu_throttled_worst_ratio']:.0%})"
        )
    checks = [
        common.load_validity_check(result),
        Check(
            name="liveness_kills_under_load",
            measured=len(kills["liveness"]),
            target=0,
            ok=not kills["liveness"],
            note=kill_note,
        ),
        Check(name="restarts_under_load", measured=restarts, target=0, ok=restarts == 0),
        Check.skip(
            "requests_while_unready",
            0,
            f"a {ctx.server.name} server counts no requests received while unready; the "
            "clients' errors during the replacement (not_ready_503, the error budget) stand in",
        )
        if metric is None
        else Check(
            name="requests_while_unready",
            measured=unready.total,
            target=0,
            ok=unready.total == 0,
            inconclusive=not unready.last,  # no pod exposed the counter: zero is no evidence
            note="requests reached a replica that was loading or draining"
            if unready.total
            else ""
            if unready.last
            else f"no pod exposed {metric}_total: requests that reached "
            "an unready replica could not be counted",
        ),
        Check(
            name="not_ready_503",
            measured=not_ready_503,
            target=0,
            ok=not_ready_503 == 0,
            note="clients were answered 503 (replica not ready / draining)"
            if not_ready_503
            else "",
        ),
    ]
    if victim is None:
        checks.append(
            Check(
                name="replacement_fault_landed",
                measured=False,
                target=True,
                ok=False,
                note="no Ready pod to replace under load",
            )
        )
    else:
        checks.append(common.fault_landed_check("replacement_fault_landed", faults[-1]))
    return checks


def _errors(result: Any) -> int:
    return sum(result.errors.values()) + int(result.dropped)


def _a_ready_pod(backend: Backend) -> str | None:
    ready = sorted(
        (p for p in backend.pods() if p.ready and p.deletionTimestamp is None),
        key=lambda p: p.creationTimestamp,
    )
    return ready[-1].name if ready else None


# --------------------------------------------------------------------------------------------
# 4. a hung replica


def hang_phase(
    ctx: ScenarioContext, backend: Backend, faults: list[FaultRecord], measurements: dict[str, Any]
) -> list[Check]:
    prof = ctx.profile
    target = prof.probes.hang_detect_s
    victim = _a_ready_pod(backend)
    if victim is None:
        return [
            Check(
                name="hang_fault_landed",
                measured=False,
                target=True,
                ok=False,
                note="no Ready pod to hang",
            )
        ]
    observe_s = target * 1.5 + 10
    spec = common.load_spec(
        ctx, backend, rate_rps=prof.load.baseline_rps, duration_s=observe_s, shape=None
    )
    t_unready = t_kill = t_back = None
    with common.background_load(ctx, spec, evidence.HANG_LOAD_RUN) as handle:
        time.sleep(min(3.0, observe_s / 5))
        fault = backend.hang_pod(victim)
        faults.append(fault)
        t_hang = fault.started_at
        deadline = time.monotonic() + observe_s
        while time.monotonic() < deadline and fault.landed:
            pod = next((p for p in backend.pods() if p.name == victim), None)
            if t_unready is None and (pod is None or not pod.ready):
                t_unready = time.time()
            if t_kill is None:
                kill = [
                    e
                    for e in common.probe_kills(backend.events(since=t_hang))["liveness"]
                    if e.involvedObject.name == victim
                ]
                if kill:
                    t_kill = min(e.firstTimestamp for e in kill)
            if t_kill is not None and pod is not None and pod.ready and t_back is None:
                t_back = time.time()
            if t_back is not None:
                break
            time.sleep(0.2)
        result = handle.wait(timeout=observe_s + spec.timeout_s + 120)
    if t_kill is not None and t_unready is not None:
        t_unready = min(t_unready, _unready_transition(backend, victim, t_hang) or t_unready)
    detect = None if t_kill is None else round(t_kill - t_hang, 2)
    unready_after = None if t_unready is None else round(t_unready - t_hang, 2)
    window = _window_errors(result, t_hang, t_back or (t_hang + observe_s))
    measurements["hang"] = {
        "pod": victim,
        "hang_at": t_hang,
        "unready_after_s": unready_after,
        "killed_after_s": detect,
        "ready_again_after_s": None if t_back is None else round(t_back - t_hang, 2),
        "requests_failed_while_hung": window,
        "load_errors": result.errors,
    }
    if not fault.landed:
        return hang_not_landed(fault, target)
    lead_ok = t_unready is not None and (t_kill is None or t_unready + UNREADY_LEAD_S <= t_kill)
    return [
        common.fault_landed_check("hang_fault_landed", fault),
        Check(
            name="hang_detected_s",
            measured=detect if detect is not None else f"not within {observe_s:.0f}",
            target=target,
            unit="s",
            ok=detect is not None and detect <= target,
            note=""
            if detect is not None
            else "the hung replica was never killed by its liveness probe",
        ),
        Check(
            name="hung_replica_unready_before_kill",
            measured=unready_after,
            target="before the kill",
            unit="s",
            ok=lead_ok,
            note=""
            if lead_ok
            else (
                f"the hung replica stayed Ready (in the endpoints) until it was killed; "
                f"{window} requests sent while it was hung failed"
            ),
        ),
    ]


def hang_not_landed(fault: FaultRecord, target: float) -> list[Check]:
    """A hang that never landed tested no probe: every hang check is inconclusive (the service
    is neither passed nor failed on it), with the fault's own reason."""
    why = f"the hang did not land, so no probe was tested: {fault.detail or 'no detail'}"
    return [
        Check(
            name="hang_fault_landed",
            measured=False,
            target=True,
            ok=False,
            inconclusive=True,
            note=why,
        ),
        Check(
            name="hang_detected_s",
            measured=None,
            target=target,
            unit="s",
            ok=False,
            inconclusive=True,
            note=why,
        ),
        Check(
            name="hung_replica_unready_before_kill",
            measured=None,
            target="before the kill",
            ok=False,
            inconclusive=True,
            note=why,
        ),
    ]


def _unready_transition(backend: Backend, pod_name: str, since: float) -> float | None:
    pod = next((p for p in backend.pods() if p.name == pod_name), None)
    if pod is None:
        return None
    times = [
        c.lastTransitionTime
        for c in pod.conditionHistory
        if c.type == "Ready" and c.status == "False" and c.lastTransitionTime >= since
    ]
    return min(times) if times else None


def _window_errors(result: Any, t0: float, t1: float) -> int | None:
    try:
        w = result.window(t0, t1)
    except (FileNotFoundError, AttributeError):
        return None
    return int(sum(w.errors.values()) + w.dropped)
