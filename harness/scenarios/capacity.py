"""capacity: how much can one replica take while the SLOs hold?

One Ready replica (no HPA), loaded straight at its pod URL with the request the replicas are
sized for (`spike.request`, default `load.request`), streamed when the SLO has stream targets:

1. a closed-loop burst of CAPACITY_USERS finds its saturated throughput;
2. an open-loop step sweep from SWEEP_FROM x that throughput up to all of it, each step long
   enough for its percentiles (when the SLO breaks at its first step, once more from
   SWEEP_FROM x that step up to it, so a slow replica is measured, not only bounded). Per
   step: offered vs achieved rate, the SLO's percentile targets
   (end-to-end, TTFT, TPOT), availability, goodput (when the SLO defines it) and the server's
   queue (the server kind's, `vllm:num_requests_waiting`) at the step's end.

The capacity is the highest step whose window met the SLO, below the first that did not.
Saturation is named from the evidence where it shows first: achieved below offered, the
server's queue growing, TTFT rising well above the sweep's first step, goodput below target.

The sweep's means are held against the server's own histograms (harness.load.crosscheck):
a disagreement is a caveat on the verdict.

Checks: the Deployment's replicas carry the profile's baseline at the measured capacity
(`replicas_for_baseline`), with one zone lost as supporting evidence. The capacity
(`capacity_rps_per_replica`) feeds hpa (spike sizing), zone-failure (survivors' capacity) and
`gauntlet check --measured`. A sweep whose SLO broke at its first step gives only an upper
bound: it fails the check when even that bound needs more replicas, else it is inconclusive.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import prom
from harness.backends.base import Backend, BackendError
from harness.backends.observe import FaultRecord
from harness.errors import InputError
from harness.load import crosscheck
from harness.load.spec import Shape
from harness.profile import RequestShape
from harness.run import evidence
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.cold_start import start_timeout_s
from harness.sla import breaches, goodput_in
from harness.verdict import Check, Verdict

NAME = "capacity"
#: every check this scenario can report, in the order it reports them (a pytest result each)
CHECKS = ("rollout_ready", "load_valid", "replicas_for_baseline", "service_scaling")
CAPACITY_USERS = 16  # closed loop: enough in flight to fill one replica's batches
BURST_S = 3.0
SWEEP_FROM = 0.3  # the sweep starts at this share of the burst's throughput
STEP_DELIVERED_MIN = 0.9  # achieved / offered below this: the replica (or generator) fell behind
TTFT_RISE = 3.0  # a step's TTFT p50 above this x the first step's (and 20 ms more): queueing
TTFT_RISE_MIN_MS = 20.0
QUEUE_MIN = 2  # one request waiting a step for the token budget is not yet a queue


@dataclass(frozen=True)
class Sweep:
    """How long the sweep runs: the scenario's full one, or hpa's short one when the capacity
    scenario did not run first."""

    steps: int
    step_s: float


FULL = Sweep(steps=8, step_s=4.0)
SHORT = Sweep(steps=6, step_s=3.0)


@dataclass
class Capacity:
    rps: (
        float | None
    )  # SLO-compatible requests/s of one replica; None: neither measured nor declared
    source: str
    sweep: list[dict[str, Any]] = field(default_factory=list)
    upper_bound: bool = False  # the SLO broke at the first step: capacity is below `rps`
    saturated_rps: float | None = None  # the closed-loop burst's throughput
    #: the least rate from which the SLO broke to the sweep's end (a step that broke while a
    #: higher one held is no bound: a CI run sized hpa's spike from a break at 18.6 req/s per
    #: replica and 2 replicas then held 40.1 over the 120 s spike); the burst's throughput when
    #: no break lasted to the top. The true capacity lies in [rps, broke_at_rps).
    broke_at_rps: float | None = None
    saturation: str = ""  # where the sweep first showed saturation, and how
    server_agreement: crosscheck.CrossCheck | None = None  # the sweep: client vs server means
    validity: Check | None = None  # the sweeps' load_valid (the first that failed, else the last)


def sizing_request(ctx: ScenarioContext) -> RequestShape:
    """The request replicas are sized for: the spike's (default: the baseline's)."""
    return ctx.profile.spike.request or ctx.profile.load.request


def run(ctx: ScenarioContext) -> Verdict:
    checks: list[Check] = []
    meas: dict[str, Any] = {}
    try:
        cap = measure_on_own_replica(ctx, FULL)
    except _RolloutFailed as err:
        checks.append(err.check)
        return _finish(ctx, checks, meas)
    ctx.measured["capacity"] = cap
    meas.update(
        {
            "capacity_rps_per_replica": cap.rps,
            "capacity_source": cap.source,
            "capacity_upper_bound": cap.upper_bound,
            "saturated_rps": cap.saturated_rps,
            "slo_broke_at_rps": cap.broke_at_rps,
            "saturation": cap.saturation,
            "capacity_sweep": cap.sweep,
            "server_agreement": (
                cap.server_agreement.model_dump() if cap.server_agreement else None
            ),
        }
    )
    checks.append(
        cap.validity
        or Check(
            name="load_valid",
            measured=None,
            target=True,
            ok=False,
            inconclusive=True,
            note="no sweep ran",
        )
    )
    checks.append(replicas_check(ctx, cap))
    caveats = cap.server_agreement.caveats if cap.server_agreement else []
    if ctx.profile.capacity.service_sweep:
        scaling = service_scaling(ctx, cap, meas)
        if ctx.profile.capacity.service_scaling_min is not None:
            checks.append(scaling)
    return _finish(ctx, checks, meas, caveats)


def measure_service(ctx: ScenarioContext) -> tuple[Capacity, int]:
    """The Deployment's replicas without HPA, swept through the Service (whatever sits between
    the load and the replicas: the Service proxy, kube-proxy, a mesh): (capacity, replicas)."""
    have = common.spec_replicas(ctx.bundle)
    with ctx.deploy(common.without_hpa(ctx.bundle, replicas=have), wait=False) as backend:
        failed = common.rollout_ready_check(backend, have, start_timeout_s(ctx) * 2)
        if failed:
            raise _RolloutFailed(failed)
        return measure(ctx, backend, FULL, service_target(backend)), have


def service_scaling(ctx: ScenarioContext, one: Capacity, meas: dict[str, Any]) -> Check:
    """The Service's capacity over replicas x one replica's (1.0: the replicas add up; well
    below: the path to them, or their sharing of the machine, takes the rest)."""
    want = ctx.profile.capacity.service_scaling_min
    try:
        svc, replicas = measure_service(ctx)
    except _RolloutFailed as err:
        return err.check.model_copy(update={"name": "service_scaling", "inconclusive": True})
    except (BackendError, InputError, OSError, ValueError) as err:
        svc, replicas = Capacity(None, f"could not be measured ({type(err).__name__}: {err})"), 0
    ratio = (
        round(svc.rps / (replicas * one.rps), 3)
        if svc.rps is not None and one.rps and replicas and not (svc.upper_bound or one.upper_bound)
        else None
    )
    meas.update(
        {
            "service_capacity_rps": svc.rps,
            "service_capacity_source": svc.source,
            "service_capacity_upper_bound": svc.upper_bound,
            "service_sweep": svc.sweep,
            "service_scaling": ratio,
        }
    )
    note = (
        f"the Service carried {svc.rps:g} req/s over {replicas} replicas vs {one.rps:g} req/s "
        f"for one alone: {ratio:.0%} of {replicas} x one"
        if ratio is not None and svc.rps is not None and one.rps is not None
        else f"not comparable: one replica {one.source}; the Service {svc.source}"
    )
    if svc.validity is not None and not svc.validity.ok:
        note += f"; the Service sweep was not valid: {svc.validity.note}"
    return Check(
        name="service_scaling",
        measured=ratio,
        target=f">= {want:g}" if want is not None else None,
        ok=ratio is not None and want is not None and ratio >= want,
        inconclusive=ratio is None or (svc.validity is not None and not svc.validity.ok),
        note=note,
    )


def _finish(
    ctx: ScenarioContext, checks: list[Check], meas: dict[str, Any], caveats: Sequence[str] = ()
) -> Verdict:
    return common.finish(
        ctx,
        NAME,
        checks,
        list[FaultRecord](),
        meas,
        loads=(
            evidence.CAPACITY_BURST_RUN,
            evidence.CAPACITY_RUN,
            evidence.CAPACITY_LOW_RUN,
            evidence.SERVICE_CAPACITY_BURST_RUN,
            evidence.SERVICE_CAPACITY_RUN,
            evidence.SERVICE_CAPACITY_LOW_RUN,
        ),
        report_only=("capacity_sweep", "service_sweep"),
        caveats=list(caveats),
    )


def replicas_check(ctx: ScenarioContext, cap: Capacity) -> Check:
    """ceil(baseline / capacity) replicas must fit the Deployment's replicas."""
    base = ctx.profile.load.baseline_rps
    have = common.spec_replicas(ctx.bundle)
    if cap.rps is None:
        return Check(
            name="replicas_for_baseline", measured=None, target=have, ok=False,
            inconclusive=True, note=cap.source,
        )  # fmt: skip
    need = math.ceil(base / cap.rps - 1e-9)
    zones = _zones_after_loss(ctx)
    per = f"< {cap.rps:g}" if cap.upper_bound else f"{cap.rps:g}"
    note = (
        f"{base:g} req/s baseline at {per} req/s per replica needs "
        f"{'more than ' if cap.upper_bound else ''}{need - 1 if cap.upper_bound else need}; "
        f"the Deployment has {have}"
    )
    if zones:
        note += f"; {zones}"
    if cap.upper_bound and need <= have:
        return Check(
            name="replicas_for_baseline", measured=f">= {need}", target=have, ok=False,
            inconclusive=True,
            note=note + ": the SLO broke at the sweep's first step, so capacity is only bounded",
        )  # fmt: skip
    return Check(
        name="replicas_for_baseline",
        measured=f">= {need}" if cap.upper_bound else need,
        target=have,
        ok=need <= have,
        note=note,
    )


def _zones_after_loss(ctx: ScenarioContext) -> str:
    zones = ctx.profile.zones.zones
    have = common.spec_replicas(ctx.bundle)
    if len(zones) < 2:
        return ""
    survivors = have - math.ceil(have / len(zones))
    return f"with one of {len(zones)} zones lost, {survivors} replica(s) survive a spread placement"


# --------------------------------------------------------------------------------------------
# measuring


class _RolloutFailed(Exception):
    def __init__(self, check: Check) -> None:
        super().__init__(check.note)
        self.check = check


def measure_on_own_replica(ctx: ScenarioContext, sweep: Sweep) -> Capacity:
    """Deploy one replica without HPA (so the sweep neither makes an HPA scale nor shares the
    machine with other replicas) and measure it."""
    with ctx.deploy(common.without_hpa(ctx.bundle, replicas=1), wait=False) as backend:
        failed = common.rollout_ready_check(backend, 1, start_timeout_s(ctx) * 2)
        if failed:
            raise _RolloutFailed(failed)
        return measure(ctx, backend, sweep)


def capacity_per_replica(ctx: ScenarioContext) -> Capacity:
    """For hpa: the capacity scenario's result from this run, else measured here the short way
    (named so), else the profile's declared value (named a fallback)."""
    earlier = ctx.measured.get("capacity")
    if isinstance(earlier, Capacity) and earlier.rps is not None:
        return Capacity(
            earlier.rps,
            "measured by the capacity scenario in this run",
            broke_at_rps=earlier.broke_at_rps,
        )
    try:
        cap = measure_on_own_replica(ctx, SHORT)
        cap.source = "measured the short way (the capacity scenario did not run): " + cap.source
    except (_RolloutFailed, BackendError, InputError, OSError, ValueError) as err:
        declared = ctx.profile.spike.capacity_rps_per_replica
        why = f"could not be measured ({type(err).__name__}: {err})"
        if declared:
            return Capacity(float(declared), f"declared in the profile: {why}")
        return Capacity(None, f"unknown: {why}, and the profile declares none")
    ctx.measured["capacity"] = cap
    return cap


@dataclass(frozen=True)
class Target:
    """What a sweep loads: one pod straight (the per-replica capacity) or the Service."""

    label: str  # "pod X", "the Service over 2 replicas"
    url: str | None  # None: the Service, as common.load_spec aims at it (in-cluster on kube)
    pods: tuple[str, ...]  # whose queue the sweep samples
    users: int  # closed-loop users of the burst
    runs: tuple[str, str, str]  # evidence names: burst, sweep, the lower sweep


def pod_target(backend: Backend) -> Target:
    pod = sorted(p.name for p in backend.pods() if p.ready)[0]
    runs = (evidence.CAPACITY_BURST_RUN, evidence.CAPACITY_RUN, evidence.CAPACITY_LOW_RUN)
    return Target(f"pod {pod}", backend.pod_url(pod).rstrip("/"), (pod,), CAPACITY_USERS, runs)


def service_target(backend: Backend) -> Target:
    pods = tuple(sorted(p.name for p in backend.pods() if p.ready))
    runs = (
        evidence.SERVICE_CAPACITY_BURST_RUN,
        evidence.SERVICE_CAPACITY_RUN,
        evidence.SERVICE_CAPACITY_LOW_RUN,
    )
    return Target(
        f"the Service over {len(pods)} Ready replicas",
        None,
        pods,
        CAPACITY_USERS * max(len(pods), 1),
        runs,
    )


def measure(
    ctx: ScenarioContext, backend: Backend, sweep: Sweep, target: Target | None = None
) -> Capacity:
    """Burst, then sweep `target` (default: the first Ready pod, straight at its URL)."""
    t = target or pod_target(backend)
    kw: dict[str, Any] = {
        "shape": None,
        "body": common.body_for(sizing_request(ctx)),
        "arrival": "constant",
    }
    if t.url is not None:
        kw.update(target=t.url, allow_targets=[t.url])
    burst_run, sweep_run, low_run = t.runs
    burst = common.run_load(
        ctx,
        common.load_spec(ctx, backend, mode="closed", users=t.users, duration_s=BURST_S, **kw),
        burst_run,
    )
    saturated = burst.ok / max(burst.duration_s, 1e-6)
    if saturated <= 0:
        raise ValueError(f"{t.label} served nothing to {t.users} users: errors {burst.errors}")
    how = f"{t.label}: {t.users} closed-loop users saturate at {saturated:.1f} req/s"
    start = saturated * SWEEP_FROM
    swept = _sweep(ctx, backend, t, kw, start, sweep, sweep_run)
    how += f"; open-loop steps of {sweep.step_s:g} s from {start:.1f} req/s"
    if swept.best is None:
        # the SLO broke at the first step: sweep once more below it, as a sweep that starts
        # from a single user would have (capacity is then bounded on both sides)
        low = start * SWEEP_FROM
        lower = _sweep(ctx, backend, t, kw, low, sweep, low_run)
        how += f" broke at the first; again from {low:.1f} req/s"
        swept = _Swept(
            swept.rows + lower.rows,
            lower.best,
            lower.broke_for_good or swept.broke_for_good,
            lower.saturation or swept.saturation,
            lower.agreement,
            [*swept.validity, *lower.validity],
        )
    common_fields: dict[str, Any] = {
        "sweep": swept.rows,
        "saturated_rps": round(saturated, 2),
        "server_agreement": swept.agreement,
        "validity": _worst(swept.validity),
    }
    if swept.best is None:
        bound = swept.rows[-1]["requested_rps"] if swept.rows else start
        return Capacity(
            round(min(bound, start), 2),
            how + f"; the SLO broke at the first step: capacity < {min(bound, start):.1f} req/s",
            upper_bound=True,
            broke_at_rps=round(min(bound, start), 2),
            saturation=swept.saturation,
            **common_fields,
        )
    held_to_top = bool(swept.rows) and not swept.rows[-1]["breaches"]
    broke_at = swept.broke_for_good or saturated
    return Capacity(
        round(swept.best, 2),
        how
        + f"; the SLO held up to {swept.best:.1f} req/s"
        + ("; the SLO held up to saturation" if held_to_top else ""),
        saturation=swept.saturation or "not reached in the sweep",
        broke_at_rps=round(max(broke_at, swept.best), 2),
        **common_fields,
    )


@dataclass
class _Swept:
    rows: list[dict[str, Any]]
    best: float | None  # the highest step whose SLO held, None when the first broke
    broke_for_good: float | None  # the first step from which every step broke; None: none
    saturation: str
    agreement: crosscheck.CrossCheck | None
    validity: list[Check]  # the sweeps' load_valid checks


def _worst(checks: list[Check]) -> Check:
    return next((c for c in checks if not c.ok), checks[-1])


def _sweep(
    ctx: ScenarioContext,
    backend: Backend,
    target: Target,
    kw: dict[str, Any],
    start: float,
    sweep: Sweep,
    run_name: str,
) -> _Swept:
    """One open-loop step sweep from `start` up to start / SWEEP_FROM, judged step by step
    until the first step whose SLO broke; the steps after it only tell whether the break
    lasted to the top (`broke_for_good`)."""
    slo = ctx.profile.slo
    shape = Shape(kind="step", factor=1 / SWEEP_FROM, steps=sweep.steps, step_s=sweep.step_s)
    duration = sweep.steps * sweep.step_s
    queue = QueueSampler(backend, target.pods, sweep.step_s, ctx.server.metric("queue"))
    metrics_urls = [backend.pod_url(p).rstrip("/") + "/metrics" for p in target.pods]
    before = crosscheck.snapshot_all(metrics_urls)
    with common.background_load(
        ctx,
        common.load_spec(
            ctx, backend, mode="open", rate_rps=start, duration_s=duration, **{**kw, "shape": shape}
        ),
        run_name,
    ) as handle:
        queue.follow(handle, sweep.steps)
        res = handle.wait(timeout=duration + 120)
    agreement = crosscheck.compare(
        " + ".join(metrics_urls), before, crosscheck.snapshot_all(metrics_urls), res
    )
    ts, rates = shape.breakpoints(start, duration)
    rows: list[dict[str, Any]] = []
    best: float | None = None
    saturation = ""
    first_ttft: float | None = None
    broken: list[tuple[float, bool]] = []  # every step's (rate, SLO broke)
    for i in range(sweep.steps):
        t0, rate = ts[2 * i], rates[2 * i]
        w = res.window(res.started_at + t0, res.started_at + t0 + sweep.step_s, slo.percentiles())
        reasons = breaches(w, slo)
        good = _goodput(ctx, res, t0, sweep.step_s)
        if slo.goodput and good is not None and good < slo.goodput.min_attainment:
            reasons.append(f"goodput {good:.2%} < {slo.goodput.min_attainment:.2%}")
        delivered = w.requests / max(w.scheduled, 1)
        if delivered < STEP_DELIVERED_MIN:
            reasons.append(f"achieved {delivered:.0%} of the offered rate")
        broken.append((rate, bool(reasons)))
        if rows and rows[-1]["breaches"]:
            continue  # judged up to the first break; later steps only say whether it lasted
        ttft50 = w.ttft_ms.get("p50") if w.ttft_ms else None
        if first_ttft is None:
            first_ttft = ttft50
        waiting = (queue.at(i), queue.at(i - 1) if i else None)
        signs = _saturation_signs(w, delivered, ttft50, first_ttft, waiting, good, ctx)
        if signs and not saturation:
            saturation = f"at {rate:.1f} req/s: " + "; ".join(signs)
        rows.append(
            {
                "requested_rps": round(rate, 2),
                "achieved_rps": round(w.rate_rps, 2),
                "latency_ms": w.latency_ms,
                "ttft_ms": w.ttft_ms,
                "tpot_ms": w.tpot_ms,
                "goodput": good,
                "errors": w.errors,
                "dropped": w.dropped,
                "queue_waiting": queue.at(i),
                "slo_held": not reasons,
                "breaches": reasons,
            }
        )
        if not reasons:
            best = rate
    validity = common.load_validity_check(
        res, f"the capacity sweep of {target.label} from {start:.1f} req/s"
    )
    return _Swept(rows, best, lasting_break(broken), saturation, agreement, [validity])


def lasting_break(steps: Sequence[tuple[float, bool]]) -> float | None:
    """The rate of the first step from which every step (rate, SLO broke) broke; None when
    the last one held."""
    at = None
    for rate, broke in steps:
        at = (at if at is not None else rate) if broke else None
    return at


def _goodput(ctx: ScenarioContext, res: Any, t0: float, step_s: float) -> float | None:
    """The step's goodput attainment (the SLO's per-request thresholds), None without one."""
    g = ctx.profile.slo.goodput
    found = goodput_in(res, g.thresholds(), t0, t0 + step_s) if g else None
    return found.attainment if found else None


def _saturation_signs(
    w: Any,
    delivered: float,
    ttft50: float | None,
    first_ttft: float | None,
    waiting: tuple[float | None, float | None],
    good: float | None,
    ctx: ScenarioContext,
) -> list[str]:
    signs = []
    if delivered < STEP_DELIVERED_MIN:
        signs.append(f"achieved {w.rate_rps:g} req/s of {w.scheduled / (w.t1 - w.t0):.1f} offered")
    now, before = waiting
    if now is not None and now >= QUEUE_MIN and now > (before or 0.0):
        signs.append(f"the server's queue grew to {now:g} waiting")
    if (
        ttft50 is not None
        and first_ttft is not None
        and ttft50 > max(TTFT_RISE * first_ttft, first_ttft + TTFT_RISE_MIN_MS)
    ):
        signs.append(f"TTFT p50 {ttft50:g} ms vs {first_ttft:g} ms at the first step")
    g = ctx.profile.slo.goodput
    if g and good is not None and good < g.min_attainment:
        signs.append(f"goodput {good:.2%} below {g.min_attainment:.2%}")
    return signs


class QueueSampler:
    """The servers' queue depth at the end of every sweep step, summed over `pods` (their
    /metrics: the server kind's queue metric, vLLM's `vllm:num_requests_waiting`); None where
    the server has none, or a pod did not answer."""

    def __init__(
        self, backend: Backend, pods: Sequence[str], step_s: float, metric: str | None
    ) -> None:
        self.backend, self.pods, self.step_s, self.metric = backend, tuple(pods), step_s, metric
        self.values: list[float | None] = []

    def follow(self, handle: Any, steps: int) -> None:
        """Sample at each step's end of the run `handle` (returns when the last step ends)."""
        deadline = time.monotonic() + 60.0  # the workers' start is bounded by the runner too
        while handle.started_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        started = handle.started_at or time.time()
        for i in range(steps):
            wait = started + (i + 1) * self.step_s - 0.2 - time.time()
            if wait > 0:
                time.sleep(wait)  # sampling at the step's end, not a measurement
            self.values.append(self._read())

    def _read(self) -> float | None:
        if self.metric is None:
            return None
        total = 0.0
        for pod in self.pods:
            try:
                value = prom.total(common.pod_metrics(self.backend, pod), self.metric)
            except Exception:
                return None
            if value is None:
                return None
            total += value
        return total

    def at(self, i: int) -> float | None:
        return self.values[i] if i < len(self.values) else None
