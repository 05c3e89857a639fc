"""hpa: baseline -> spike -> baseline; does the autoscaler add capacity fast enough, and well?

The spike must need more replicas than the scenario starts with, or it tests nothing. So the
per-replica capacity comes from the capacity scenario of this run (or, when it did not run, is
measured here the short way, named so; harness.scenarios.capacity). The spike is
`spike.factor` x baseline, raised to `capacity x (initial replicas + SPIKE_EXTRA_REPLICAS)`
when the initial replicas could carry that (capacity here: the sweep's rate from which the SLO
stayed broken, the top of the interval the true capacity lies in, so that neither a sweep
step's resolution nor one step's transient breach can leave a spike the initial replicas
carry), and lowered to what maxReplicas carry on a slower machine (SpikeTargets.rate). A
capacity declared in the profile is a fallback the verdict names as such.

A metric the HPA could not get in most of its syncs (ScalingActive False with
FailedGetPodsMetric / FailedGetExternalMetric / FailedGetResourceMetric, the controller's events
of those reasons, or its "invalid metrics" error) means no metrics pipeline serves it (no
custom-metrics adapter, no KEDA, no metrics-server): the run then did not test the HPA as
written, so its failed speed and SLO checks are inconclusive, naming the pipeline, not failures.

Measured: time from the spike's start to the first scale-up decision (SuccessfulRescale event,
else the HPA status history) and to the first new replica Ready (vs `spike.scale_out_s`),
SLA-breach seconds from the spike on (vs `spike.max_breach_s`) with the unserved demand and the
replicas reached as supporting evidence, and flapping on the way down. A spike the generator
did not deliver fails; one the initial replicas served within the SLO (over the whole spike)
without any scale-up is inconclusive, while one they breached fails the speed checks. The HPA
model's prediction (harness.models.hpa.simulate) is kept beside the measurement.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from harness.backends.base import Backend
from harness.backends.observe import FaultKind, FaultRecord
from harness.load.spec import Shape
from harness.run import evidence
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.capacity import Capacity, capacity_per_replica, sizing_request
from harness.scenarios.cold_start import start_timeout_s
from harness.sla import breaches
from harness.verdict import Check, Verdict

NAME = "hpa"
#: every check this scenario can report, in the order it reports them (a pytest result each)
CHECKS = (
    "hpa_present",
    "rollout_ready",
    "load_valid",
    "spike_delivered",
    "spike_needed_scaling",
    "first_scale_decision_s",
    "first_new_replica_ready_s",
    "breach_seconds",
    "flaps_on_way_down",
    "metrics_pipeline",
)
SPIKE_DELIVERED_MIN = 0.95  # achieved / requested rate during the spike
#: the ScalingActive reasons (and event reasons) of a metric the HPA could not get
FAILED_GET_REASONS = (
    "FailedGetPodsMetric",
    "FailedGetExternalMetric",
    "FailedGetResourceMetric",
    "FailedGetContainerResourceMetric",
    "FailedGetObjectMetric",
)
#: a metric missing in more than this share of the HPA's syncs has no pipeline serving it
PIPELINE_MISSING_SHARE = 0.5


def run(ctx: ScenarioContext) -> Verdict:
    hpa = ctx.bundle.hpa
    meas: dict[str, Any] = {}
    checks: list[Check] = []
    faults: list[FaultRecord] = []
    if hpa is None:
        checks.append(
            Check(
                name="hpa_present",
                measured=False,
                target=True,
                ok=False,
                note="no HorizontalPodAutoscaler: nothing scales for the spike",
            )
        )
        return _finish(ctx, checks, faults, meas)
    max_r = int(hpa.get("spec", {}).get("maxReplicas", 1))
    min_r = int(hpa.get("spec", {}).get("minReplicas", 1))
    capacity = capacity_per_replica(ctx)  # the capacity scenario, else the short way
    meas.update(
        {
            "capacity_rps_per_replica": capacity.rps,
            "capacity_source": capacity.source,
            "capacity_sweep": capacity.sweep,
            "slo_broke_at_rps": capacity.broke_at_rps,
            "hpa_min_replicas": min_r,
            "hpa_max_replicas": max_r,
        }
    )
    with ctx.deploy(wait=False) as backend:
        failed = common.rollout_ready_check(
            backend, common.spec_replicas(ctx.bundle), start_timeout_s(ctx) * 2
        )
        if failed:
            checks.append(failed)
            return _finish(ctx, checks, faults, meas)
        t_spike = time.time()
        checks += spike_phase(ctx, backend, capacity, max_r, faults, meas)
        meas.update(common.cpu_throttling(backend.resource_samples(since=t_spike)))
    return _finish(ctx, checks, faults, meas)


def _finish(
    ctx: ScenarioContext, checks: list[Check], faults: list[FaultRecord], meas: dict[str, Any]
) -> Verdict:
    source = str(meas.get("capacity_source", ""))
    caveats = (
        [f"the spike was sized from a capacity not measured in this run: {source}"]
        if source.startswith(("declared", "unknown"))
        else []
    )
    return common.finish(
        ctx,
        NAME,
        checks,
        faults,
        meas,
        loads=(
            evidence.LOAD_RUN,
            evidence.CAPACITY_BURST_RUN,
            evidence.CAPACITY_RUN,
            evidence.CAPACITY_LOW_RUN,
        ),
        caveats=caveats,
        report_only=("replica_timeline", "model", "capacity_sweep"),
    )


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
                d = self.backend.deployment()
                self.samples.append(
                    {
                        "time": time.time(),
                        "spec": d.spec.replicas,
                        "ready": d.status.readyReplicas,
                        "replicas": d.status.replicas,
                    }
                )
            except Exception:
                pass
            self._stop.wait(self.period_s)

    def __enter__(self) -> ReplicaWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def spike_phase(
    ctx: ScenarioContext,
    backend: Backend,
    measured: Capacity,
    max_r: int,
    faults: list[FaultRecord],
    meas: dict[str, Any],
) -> list[Check]:
    sp = ctx.profile.spike
    base_rate = ctx.profile.load.baseline_rps
    initial = backend.deployment().spec.replicas or common.spec_replicas(ctx.bundle)
    capacity = measured.rps
    spike_rate, sizing = sp.rate(base_rate, capacity, initial, max_r, measured.broke_at_rps)
    shape = Shape(
        kind="spike",
        factor=spike_rate / base_rate,
        baseline_s=sp.baseline_s,
        spike_s=sp.spike_s,
        after_s=sp.after_s,
    )
    spec = common.load_spec(ctx, backend, shape=shape, body=common.body_for(sizing_request(ctx)))
    needed = max(1, math.ceil(spike_rate / capacity)) if capacity else None
    t_before = time.time()
    with ReplicaWatcher(backend) as watch:
        result = common.run_load(ctx, spec)
        time.sleep(1.0)
    spike_t0 = result.started_at + sp.baseline_s
    spike_t1 = spike_t0 + sp.spike_s
    spike_win = result.window(spike_t0, spike_t1, ctx.profile.slo.percentiles())
    delivered = spike_win.rate_rps / spike_rate if spike_rate else 0.0
    faults.append(
        FaultRecord(
            kind=FaultKind.TRAFFIC_SPIKE,
            target=spec.target,
            started_at=spike_t0,
            ended_at=spike_t1,
            affected=[f"{base_rate:g} -> {spike_rate:.1f} req/s"],
            landed=bool(result.valid and delivered >= SPIKE_DELIVERED_MIN),
            detail=(
                f"delivered {spike_win.rate_rps:.1f} req/s of {spike_rate:.1f} requested "
                f"({delivered:.0%})"
            ),
        )
    )

    history = backend.hpa_history()
    events = backend.events(since=t_before)
    rescales = sorted(
        (e for e in events if e.reason == "SuccessfulRescale"), key=lambda e: e.firstTimestamp
    )
    decision_t = first_scale_up(rescales, history, initial, spike_t0)
    ready_t = next(
        (s["time"] for s in watch.samples if s["time"] >= spike_t0 and s["ready"] > initial), None
    )
    max_ready = max((s["ready"] for s in watch.samples), default=0)
    max_desired = max([h.desiredReplicas for h in history if h.time >= t_before] + [initial])
    breach = breach_seconds(ctx, result, spike_t0)
    flaps = flapping(
        [(h.time, h.desiredReplicas) for h in history if h.time >= spike_t1]
        or [(s["time"], s["spec"]) for s in watch.samples if s["time"] >= spike_t1]
    )
    pipeline = metrics_pipeline(hpa_of(ctx), history, events, t_before)
    decision_s = None if decision_t is None else round(decision_t - spike_t0, 2)
    ready_s = None if ready_t is None else round(ready_t - spike_t0, 2)
    unserved = spike_win.requests - spike_win.ok + spike_win.dropped
    reached = max(max_ready, max_desired)
    meas.update(
        {
            "baseline_rps": base_rate,
            "spike_rps": round(spike_rate, 2),
            "spike_sizing": sizing,
            "spike_delivered_rps": round(spike_win.rate_rps, 2),
            "initial_replicas": initial,
            "needed_replicas": needed,
            "max_desired_replicas": max_desired,
            "max_ready_replicas": max_ready,
            "first_scale_decision_s": decision_s,
            "first_new_ready_s": ready_s,
            "breach_seconds": breach["seconds"],
            "breach_detail": breach["detail"],
            "spike_unserved_requests": unserved,
            "spike_requests": spike_win.requests + spike_win.dropped,
            "flaps_on_way_down": flaps,
            "rescale_events": [e.message for e in rescales],
            "spike_latency_ms": spike_win.latency_ms,
            "spike_ttft_ms": spike_win.ttft_ms,
            "spike_tpot_ms": spike_win.tpot_ms,
            "spike_errors": spike_win.errors,
            **common.stream_summary(result, ctx.profile.slo),
            "metrics_missing": pipeline["missing"],
            "metric_failures": pipeline["failures"],
            "hpa_syncs": pipeline["syncs"],
            "replica_timeline": watch.samples,
            "model": predicted(ctx, capacity, initial, spike_rate),
        }
    )
    ctx.write_json(evidence.REPLICAS, watch.samples)
    scaled = reached > initial
    held = breach["seconds"] <= sp.max_breach_s
    # the initial replicas carried the spike within the SLO: nothing asked the autoscaler for
    # capacity, so its speed cannot be judged, and a pass would be empty. (Not "within the
    # breach allowance": replicas stuck at maxReplicas breached 82 s of 120 with 6 % of the
    # spike shed, under the 100 s allowance, and that is a spike that needed scaling.)
    untested = not scaled and not breaches(spike_win, ctx.profile.slo)
    untested_note = (
        f"the {initial} initial replicas held the SLO at {spike_win.rate_rps:.1f} req/s "
        f"without a scale-up ({sizing}): the spike did not exercise the autoscaler"
    )
    supporting = (
        f"; {unserved} of {spike_win.requests + spike_win.dropped} spike requests unserved "
        f"(errors {spike_win.errors}, dropped {spike_win.dropped}); replicas {initial} -> "
        f"{reached} (maxReplicas {max_r}"
        + (f", {needed} needed at {capacity:g} req/s each)" if needed else ")")
    )

    def speed(name: str, value: float | None) -> Check:
        return Check(
            name=name,
            measured=value if value is not None else "none",
            target=sp.scale_out_s,
            unit="s",
            ok=value is not None and value <= sp.scale_out_s,
            inconclusive=untested,
            note=untested_note if untested else "",
        )

    checks = [
        common.load_validity_check(result),
        common.fault_landed_check("spike_delivered", faults[-1]),
        Check(
            name="spike_needed_scaling",
            measured=f"{initial} -> {reached} replicas",
            target=f"more than {initial} replicas needed",
            ok=not untested,
            inconclusive=untested,
            note=untested_note if untested else sizing,
        ),
        speed("first_scale_decision_s", decision_s),
        speed("first_new_replica_ready_s", ready_s),
        Check(
            name="breach_seconds",
            measured=breach["seconds"],
            target=sp.max_breach_s,
            unit="s",
            ok=held,
            note=breach["detail"] + supporting,
        ),
        Check(name="flaps_on_way_down", measured=flaps, target=0, ok=flaps == 0),
    ]
    return without_pipeline(checks, pipeline)


def hpa_of(ctx: ScenarioContext) -> dict[str, Any]:
    return ctx.bundle.hpa or {}


def metric_names(hpa: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric type, name) of each spec.metrics entry (a Resource metric by its resource)."""
    out = []
    for m in (hpa.get("spec") or {}).get("metrics") or []:
        mtype = str(m.get("type", ""))
        src = m.get({"ContainerResource": "containerResource"}.get(mtype, mtype.lower())) or {}
        name = (src.get("metric") or {}).get("name") or src.get("name")
        if name:
            out.append((mtype, str(name)))
    return out


def _failed_metric(metrics: list[tuple[str, str]], reason: str, message: str) -> str:
    """The metric a failure names: the longest metric name in its message, else the first
    metric of the type its reason stands for."""
    named = [n for _, n in sorted(metrics, key=lambda m: -len(m[1])) if n in message]
    if named:
        return named[0]
    mtype = reason.removeprefix("FailedGet").removesuffix("Metric")
    unnamed = f"a {mtype} metric" if mtype else "a metric the error does not name"
    return next((n for t, n in metrics if t == mtype), unnamed)


def metrics_pipeline(
    hpa: dict[str, Any], history: list[Any], events: list[Any], since: float
) -> dict[str, Any]:
    """Which HPA metrics no pipeline served: per metric, the HPA syncs (status samples since
    `since`) where it failed, from ScalingActive=False FailedGet* conditions and the sample's
    'invalid metrics' error, or, without status samples, the controller's FailedGet* events.
    Missing: failed in more than PIPELINE_MISSING_SHARE of the syncs."""
    metrics = metric_names(hpa)
    samples = [h for h in history if h.time >= since]
    failures: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for h in samples:
        failed: dict[str, str] = {}
        for c in h.conditions:
            if c.get("type") == "ScalingActive" and str(c.get("status")) == "False":
                reason = str(c.get("reason", ""))
                if reason in FAILED_GET_REASONS:
                    failed[_failed_metric(metrics, reason, str(c.get("message", "")))] = reason
        error = str(getattr(h, "error", None) or "")
        if "invalid metrics" in error or "unable to get" in error:
            name = _failed_metric(metrics, "", error)
            failed.setdefault(name, reasons.get(name, "invalid metric"))
        for name, reason in failed.items():
            failures[name] = failures.get(name, 0) + 1
            reasons.setdefault(name, reason)
    syncs = len(samples)
    event_counts: dict[str, int] = {}
    for e in events:
        if e.reason in FAILED_GET_REASONS and e.firstTimestamp >= since - 1:
            name = _failed_metric(metrics, e.reason, e.message)
            event_counts[name] = event_counts.get(name, 0) + max(1, int(e.count))
            reasons.setdefault(name, e.reason)
    if syncs:
        missing = {n: k for n, k in failures.items() if k > PIPELINE_MISSING_SHARE * syncs}
        how = {n: f"{reasons[n]} in {k} of {syncs} HPA syncs" for n, k in failures.items()}
    else:  # no status read: the controller's events say it
        missing = dict(event_counts)
        how = {n: f"{reasons[n]} in {k} events" for n, k in event_counts.items()}
    return {
        "missing": sorted(missing),
        "failures": how,
        "syncs": syncs,
        "events": event_counts,
    }


def without_pipeline(checks: list[Check], pipeline: dict[str, Any]) -> list[Check]:
    """The metrics_pipeline check; with a metric missing, the failed checks that depend on the
    HPA's reaction are inconclusive (it never saw the signal it was written for)."""
    missing = pipeline["missing"]
    detail = "; ".join(f"{n}: {w}" for n, w in sorted(pipeline["failures"].items()))
    if not missing:
        checks.append(
            Check(
                name="metrics_pipeline",
                measured=f"every metric served ({pipeline['syncs']} HPA syncs)",
                target="every HPA metric served",
                ok=True,
                note=f"transient failures: {detail}" if detail else "",
            )
        )
        return checks
    named = ", ".join(missing)
    why = (
        f"no metrics pipeline for {named} ({detail}): install the adapter that serves it "
        "(manifests/kind/metrics-pipeline: Prometheus + prometheus-adapter, or KEDA, "
        "docs/keda.md)"
    )
    dependent = {
        "spike_needed_scaling",
        "first_scale_decision_s",
        "first_new_replica_ready_s",
        "breach_seconds",
        "flaps_on_way_down",
    }
    out = [
        c.model_copy(
            update={
                "inconclusive": True,
                "ok": False,
                "note": f"not judged: no metrics pipeline for {named}"
                + (f"; {c.note}" if c.note else ""),
            }
        )
        if c.name in dependent and not c.ok
        else c
        for c in checks
    ]
    out.append(
        Check(
            name="metrics_pipeline",
            measured=f"no metrics pipeline for {named}",
            target="every HPA metric served",
            ok=False,
            inconclusive=True,
            note=why,
        )
    )
    return out


def first_scale_up(
    rescales: list[Any], history: list[Any], initial: int, since: float
) -> float | None:
    """Time of the first scale-up decision at or after `since`: event first, else HPA status."""
    for e in rescales:
        if e.firstTimestamp >= since - 1 and (
            "above target" in e.message or "New size" in e.message
        ):
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
        w = result.window(t, min(t + 1.0, result.end_epoch), slo.percentiles())
        if w.requests + w.dropped and breaches(w, slo):
            bad.append(round(t - since, 1))
        t += 1.0
    detail = (
        f"{len(bad)} s breached, first at +{bad[0]:g}s, last at +{bad[-1]:g}s after the spike start"
        if bad
        else "no second breached the SLA"
    )
    return {"seconds": float(len(bad)), "detail": detail, "at": bad}


def predicted(
    ctx: ScenarioContext, capacity: float | None, initial: int, spike_rate: float
) -> dict[str, Any] | None:
    """The HPA model's replica timeline for the same spike (evidence beside the measurement)."""
    from harness.models.hpa import simulate as hpa_simulate

    if capacity is None:
        return None
    sp = ctx.profile.spike
    base = ctx.profile.load.baseline_rps
    cold = common.percentile(ctx.measured.get("cold_start_s") or [], 95) or (
        ctx.profile.cold_start.declared_p95_s or ctx.profile.cold_start.p95_s
    )
    traffic = [(0.0, base), (sp.baseline_s, spike_rate), (sp.baseline_s + sp.spike_s, base)]
    try:
        res = hpa_simulate(
            ctx.bundle.hpa or {},
            traffic=traffic,
            capacity_per_replica=capacity,
            cold_start_s=float(cold),
            duration_s=sp.baseline_s + sp.spike_s + sp.after_s,
            initial_replicas=initial,
        )
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"}
    d = res.to_dict()
    d.pop("timeline", None)
    return d
