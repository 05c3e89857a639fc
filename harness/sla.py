"""SLA evaluation: a load result against an SLO, whole run and per window, into checks.

Measured-vs-target checks for every percentile target (end-to-end latency; TTFT, TPOT and ITL
of streams), availability, achieved rate, generator validity (an invalid generator run never
passes), goodput (vLLM's per-request definition) and CPU utilisation relative to the CPU
request. A stream target on a run that did not stream is inconclusive, never a pass. Breach
seconds come from 1-second buckets (by intended send time) where a percentile target or the
availability target is missed; the error budget converts failures into the SLO's monthly
budget.

Availability = ok / (sent + dropped): 429/503, timeouts, connection errors and dropped requests
all count against it (dropped requests were due and never served).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from harness.backends.observe import ResourceSample
from harness.load import records as R
from harness.load.analyze import goodput as goodput_of
from harness.load.result import Goodput, LoadResult, Pct, WindowStats, percentiles, window_stats
from harness.profile import SLO
from harness.verdict import Check, Verdict

MINUTES_PER_30D = 30 * 24 * 60
RATE_TOLERANCE = 0.95


class ErrorBudget(BaseModel):
    allowed_errors: float = Field(description="(1 - availability) x requests in the run")
    burned_errors: int
    burned_fraction: float | None = Field(description="burned / allowed; None when nothing allowed")
    budget_minutes_per_30d: float
    burned_minutes_per_30d_equivalent: float = Field(
        description="error rate of this run x 30 days, in minutes of full outage"
    )


class WindowResult(BaseModel):
    stats: WindowStats
    breached: bool
    reasons: list[str] = Field(default_factory=list)


class CpuSummary(BaseModel):
    pods: dict[str, float] = Field(description="mean CPU usage / request per pod during the run")
    max_utilization: float | None
    memory_max_bytes: int | None = None
    samples: int = 0


class SLAReport(BaseModel):
    passed: bool
    checks: list[Check]
    windows: list[WindowResult] = Field(default_factory=list)
    window_s: float
    breach_seconds: int = Field(
        description="1-s buckets where a latency target or availability was missed"
    )
    breach_intervals: list[tuple[float, float]] = Field(
        default_factory=list, description="epoch [t0, t1)"
    )
    error_budget: ErrorBudget
    availability: float | None
    goodput: Goodput | None = Field(
        default=None, description="requests within the SLO's per-request goodput thresholds"
    )
    cpu: CpuSummary | None = None
    notes: list[str] = Field(default_factory=list)

    def verdict(self, name: str, profile: str, **kw: object) -> Verdict:
        return Verdict.from_checks(name, profile, self.checks, **kw)


def error_budget(total: int, failed: int, slo: SLO) -> ErrorBudget:
    """Availability as a budget: errors the SLO allows in `total` requests vs errors burned."""
    allowed = (1 - slo.availability) * total
    err_rate = failed / total if total else 0.0
    return ErrorBudget(
        allowed_errors=round(allowed, 3),
        burned_errors=failed,
        burned_fraction=round(failed / allowed, 4) if allowed > 0 else None,
        budget_minutes_per_30d=round(slo.error_budget_minutes_per_30d(), 3),
        burned_minutes_per_30d_equivalent=round(err_rate * MINUTES_PER_30D, 3),
    )


def _q(key: str) -> float:
    return float(key[1:])


def _records(result: LoadResult) -> np.ndarray | None:
    try:
        return result.records()
    except FileNotFoundError:
        return None


def evaluate(
    result: LoadResult,
    slo: SLO,
    *,
    cpu_samples: Sequence[ResourceSample] | None = None,
    windows: bool = True,
    rate_rps: float | None = None,
    check_rate: bool = True,
) -> SLAReport:
    """Evaluate `result` against `slo`. `rate_rps` overrides the rate the SLO is claimed at."""
    rec = _records(result)
    notes: list[str] = []
    qs = slo.percentiles()
    if rec is not None:
        whole = window_stats(rec, 0.0, result.duration_s, result.started_at, qs)
        measured: dict[str, Pct] = {
            "latency": whole.latency_ms,
            "ttft": whole.ttft_ms,
            "tpot": whole.tpot_ms,
        }
    else:
        notes.append("per-request records unavailable: percentiles from load.json only, no windows")
        st = result.stream
        measured = {
            "latency": dict(result.latency_ms),
            "ttft": dict(st.ttft_ms) if st else {},
            "tpot": dict(st.tpot_ms) if st else {},
        }
    measured["itl"] = dict(result.stream.itl_ms) if result.stream else {}
    checks: list[Check] = []
    for family, targets in _families(slo):
        for key, target in sorted(targets.items(), key=lambda kv: _q(kv[0])):
            checks.append(_percentile_check(family, key, target, measured[family], result))

    total = result.requests + result.dropped
    failed = total - result.ok
    availability = result.ok / total if total else None
    checks.append(
        Check(
            name="availability",
            measured=round(availability, 6) if availability is not None else None,
            target=slo.availability,
            ok=availability is not None and availability >= slo.availability,
            note=f"{failed} of {total} failed" + (f" ({_fmt_errors(result)})" if failed else ""),
        )
    )
    if check_rate:
        want = rate_rps if rate_rps is not None else slo.rate_rps
        # Open loop: Poisson arrivals offer N +- sqrt(N) requests in a window (at 14 req/s a 10 s
        # window draws under 95 % of its 140 requests about one time in four). The server is held
        # to the claimed rate scaled by what this schedule drew relative to its nominal rate.
        offered = (
            result.scheduled / result.duration_s
            if result.mode == "open" and result.duration_s
            else None
        )
        drawn = (
            min(1.0, offered / result.requested_rate) if offered and result.requested_rate else 1.0
        )
        basis = want * drawn
        note = f"must reach {RATE_TOLERANCE:.0%} of the rate the SLO is claimed at"
        if drawn < 1.0:
            note += (
                f" (the random arrival schedule drew {drawn:.0%} of its nominal rate in this run)"
            )
        checks.append(
            Check(
                name="achieved_rate",
                measured=result.achieved_rate,
                target=want,
                ok=result.achieved_rate >= RATE_TOLERANCE * basis,
                unit="req/s",
                note=note,
            )
        )
    checks.append(
        Check(
            name="generator_valid",
            measured=result.valid,
            target=True,
            ok=result.valid,
            note="; ".join(result.invalid_reasons)
            or (
                f"schedule delay p50 {result.schedule_delay_ms.get('p50')} ms, "
                f"dropped {result.dropped}"
            ),
        )
    )

    goodput = None
    if slo.goodput is not None:
        goodput = goodput_in(result, slo.goodput.thresholds())
        checks.append(
            Check(
                name="goodput",
                measured=goodput.attainment if goodput else None,
                target=slo.goodput.min_attainment,
                ok=goodput is not None
                and goodput.attainment is not None
                and goodput.attainment >= slo.goodput.min_attainment,
                inconclusive=goodput is None,
                note=(
                    "share of due requests that succeeded with "
                    + ", ".join(f"{k} <= {v:g} ms" for k, v in slo.goodput.thresholds().items())
                    if goodput
                    else "needs per-request records and, for ttft/tpot, a streamed run"
                ),
            )
        )

    cpu = None
    if cpu_samples is not None:
        cpu = _cpu_summary(cpu_samples, result)
        if slo.cpu_utilization_max is not None:
            if cpu.max_utilization is None:
                notes.append(
                    "CPU samples carry no usage or no CPU request: CPU ceiling not checked"
                )
            else:
                checks.append(
                    Check(
                        name="cpu_utilization",
                        measured=round(cpu.max_utilization, 4),
                        target=slo.cpu_utilization_max,
                        ok=cpu.max_utilization <= slo.cpu_utilization_max,
                        note="mean usage / CPU request of the busiest pod during the run",
                    )
                )

    win_results: list[WindowResult] = []
    breach_s = 0
    intervals: list[tuple[float, float]] = []
    if rec is not None:
        if windows:
            t = 0.0
            while t < result.duration_s - 1e-9:
                t1 = min(t + slo.window_s, result.duration_s)
                ws = window_stats(rec, t, t1, result.started_at, qs)
                reasons = breaches(ws, slo)
                win_results.append(WindowResult(stats=ws, breached=bool(reasons), reasons=reasons))
                t = t1
        for s in range(math.ceil(result.duration_s - 1e-9)):
            ws = window_stats(rec, s, min(s + 1.0, result.duration_s), result.started_at, qs)
            if ws.scheduled and breaches(ws, slo):
                breach_s += 1
                t0 = result.started_at + s
                if intervals and abs(intervals[-1][1] - t0) < 1e-6:
                    intervals[-1] = (intervals[-1][0], t0 + 1.0)
                else:
                    intervals.append((t0, t0 + 1.0))

    budget = error_budget(total, failed, slo)
    passed = all(c.ok for c in checks) and result.valid
    return SLAReport(
        passed=passed,
        checks=checks,
        windows=win_results,
        window_s=slo.window_s,
        breach_seconds=breach_s,
        breach_intervals=intervals,
        error_budget=budget,
        availability=availability,
        goodput=goodput,
        cpu=cpu,
        notes=notes,
    )


def _fmt_errors(result: LoadResult) -> str:
    parts = [f"{k}: {v}" for k, v in sorted(result.errors.items())]
    if result.dropped:
        parts.append(f"dropped: {result.dropped}")
    return ", ".join(parts)


def _families(slo: SLO) -> list[tuple[str, dict[str, float]]]:
    """(metric, percentile targets): end-to-end latency first, then the stream's."""
    return [
        ("latency", slo.latency_ms),
        ("ttft", slo.ttft_ms),
        ("tpot", slo.tpot_ms),
        ("itl", slo.itl_ms),
    ]


_WHAT = {
    "latency": "end-to-end latency",
    "ttft": "time to first token",
    "tpot": "time per output token",
    "itl": "inter-token latency (chunk gaps)",
}


def _percentile_check(
    family: str, key: str, target: float, measured: Pct, result: LoadResult
) -> Check:
    got = measured.get(f"p{_q(key):g}", measured.get(key))
    if family != "latency" and result.stream is None:
        why = f"the load was not streamed: {_WHAT[family]} cannot be observed"
    elif got is None and measured and f"p{_q(key):g}" not in measured:
        why = f"{key} of {_WHAT[family]} is not among the percentiles this run kept"
    elif got is None:
        why = "no successful request" if family == "latency" else "no successful stream"
    else:
        why = ""
    return Check(
        name=f"{family}_{key}",
        measured=got,
        target=target,
        ok=got is not None and got <= target,
        unit="ms",
        inconclusive=bool(why) and family != "latency",
        note=why,
    )


def breaches(ws: WindowStats, slo: SLO) -> list[str]:
    """Why a window missed the SLO: a percentile target (end-to-end, TTFT, TPOT) or availability.
    ITL is pooled over the run, so it is judged for the run and not per window."""
    out = []
    per_window = {"latency": ws.latency_ms, "ttft": ws.ttft_ms, "tpot": ws.tpot_ms}
    for family, targets in _families(slo):
        got_by_key = per_window.get(family, {})
        for key, target in targets.items():
            got = got_by_key.get(f"p{_q(key):g}")
            if got is not None and got > target:
                out.append(f"{family} {key} {got:g} ms > {target:g} ms")
    if ws.availability is not None and ws.availability < slo.availability:
        out.append(f"availability {ws.availability:.4%} < {slo.availability:.4%}")
    return out


def goodput_in(
    result: LoadResult, thresholds: dict[str, float], a: float = 0.0, b: float | None = None
) -> Goodput | None:
    """vLLM's goodput over the due requests (sent + dropped: a drop is never good) intended in
    [a, b) s of the run (default: all of it); None when it cannot be observed (no records, or
    TTFT/TPOT thresholds on an unstreamed run)."""
    rec = _records(result)
    if rec is None or (result.stream is None and {"ttft", "tpot"} & set(thresholds)):
        return None
    b = result.duration_s if b is None else b
    rec = rec[(rec["intended"] >= a) & (rec["intended"] < b) & (rec["status"] != R.NOT_SENT)]
    return goodput_of(thresholds, rec, R.is_ok(rec["status"]), len(rec), max(b - a, 1e-9))


def _cpu_summary(samples: Sequence[ResourceSample], result: LoadResult) -> CpuSummary:
    t0, t1 = result.started_at, result.started_at + result.duration_s
    inside = [s for s in samples if t0 <= s.time <= t1 + 1.0]
    by_pod: dict[str, list[float]] = {}
    mem: list[int] = []
    for s in inside:
        if s.memory_bytes is not None:
            mem.append(s.memory_bytes)
        if s.cpu_cores is None or not s.cpu_request_cores:
            continue
        by_pod.setdefault(s.pod, []).append(s.cpu_cores / s.cpu_request_cores)
    pods = {pod: round(float(np.mean(v)), 4) for pod, v in by_pod.items()}
    return CpuSummary(
        pods=pods,
        max_utilization=max(pods.values()) if pods else None,
        memory_max_bytes=max(mem) if mem else None,
        samples=len(inside),
    )


__all__ = [
    "CpuSummary",
    "ErrorBudget",
    "SLAReport",
    "WindowResult",
    "breaches",
    "evaluate",
    "goodput_in",
    "percentiles",
]
