"""Turn merged per-request records into a `LoadResult`: totals, timeline, validity."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from harness.load import records as R
from harness.load.result import (
    Bucket,
    Goodput,
    LoadResult,
    StreamStats,
    WorkloadStats,
    error_counts,
    percentiles,
)
from harness.load.schedule import requested_per_bucket
from harness.load.spec import LoadSpec
from harness.load.workload import SamplePool

MAX_SCHEDULE_DELAY_P50_MS = 10.0
#: percentiles kept for TTFT, TPOT and ITL (an SLO can only judge what the run kept)
STREAM_PCTS = (50.0, 90.0, 95.0, 99.0, 99.9)
MIN_ACHIEVED_FRACTION = 0.95
MAX_DROPPED_FRACTION = 0.01


def build_result(
    spec: LoadSpec,
    rec: np.ndarray,
    *,
    started_at: float,
    duration_s: float,
    stopped_early: bool = False,
    generator_cpu: list[float] | None = None,
    worker_failures: list[str] | None = None,
    records_path: str | None = None,
    inter_chunk: np.ndarray | None = None,
    pool: SamplePool | None = None,
) -> LoadResult:
    """`inter_chunk`: (2, n), every chunk gap of the ok streams (row 1) with its request's send
    time (row 0), both in seconds."""
    rec = rec[rec["status"] != R.NOT_SENT]
    rec = rec[rec["intended"] < duration_s] if spec.mode == "open" else rec
    gaps = np.zeros((2, 0)) if inter_chunk is None else np.asarray(inter_chunk, dtype=np.float64)
    st = rec["status"]
    dropped_late = int((st == R.DROPPED_LATE).sum())
    dropped_slot = int((st == R.DROPPED_NO_SLOT).sum())
    dropped = dropped_late + dropped_slot
    sent = ~np.isnan(rec["sent"]) & ~np.isin(st, R.DROPPED)
    ok = R.is_ok(st)
    lat = (rec["done"] - rec["intended"])[ok]
    svc = (rec["done"] - rec["sent"])[ok]
    delay = (rec["sent"] - rec["intended"])[sent]
    n_sent = int(sent.sum())
    scheduled = len(rec)
    dur = max(duration_s, 1e-9)
    is_open = spec.mode == "open"
    requested_rate = scheduled / dur if is_open else None
    if is_open and not stopped_early:
        requested_rate = spec.expected_requests() / spec.duration_s
    achieved = n_sent / dur

    reasons: list[str] = list(worker_failures or [])
    sd = percentiles(delay, (50.0, 99.0))
    if is_open:
        if sd["p50"] is not None and sd["p50"] > MAX_SCHEDULE_DELAY_P50_MS:
            reasons.append(
                f"schedule delay p50 {sd['p50']:.1f} ms > {MAX_SCHEDULE_DELAY_P50_MS:g} ms: "
                "the generator could not keep its schedule"
            )
        if scheduled and n_sent < MIN_ACHIEVED_FRACTION * scheduled:
            reasons.append(
                f"achieved {achieved:.1f} req/s is {100 * n_sent / scheduled:.1f} % of the "
                f"{scheduled / dur:.1f} req/s scheduled (< {100 * MIN_ACHIEVED_FRACTION:g} %)"
            )
        if scheduled and dropped > MAX_DROPPED_FRACTION * scheduled:
            reasons.append(
                f"dropped {dropped} of {scheduled} requests ({dropped_late} behind schedule by "
                f"more than {spec.max_lag_s:g} s, {dropped_slot} with no free in-flight slot)"
            )
        if scheduled == 0:
            reasons.append("no request was scheduled")
    elif n_sent == 0:
        reasons.append("no request was sent")

    caveats = []
    if not is_open:
        caveats.append(
            "closed loop: latency is measured from the actual send time; a stalled server slows "
            "the senders, so queueing delay is hidden (coordinated omission)"
        )
    shape = spec.effective_shape()
    return LoadResult(
        requested_rate=round(requested_rate, 3) if requested_rate is not None else None,
        achieved_rate=round(achieved, 3),
        duration_s=round(duration_s, 3),
        scheduled=scheduled,
        requests=n_sent,
        ok=int(ok.sum()),
        errors=error_counts(st),
        latency_ms=percentiles(lat),
        service_latency_ms=percentiles(svc),
        schedule_delay_ms=sd,
        stream=stream_stats(rec[ok], gaps[1]) if spec.stream else None,
        workload=(workload_stats(spec, pool, rec[sent], rec[ok]) if pool is not None else None),
        goodput=(
            goodput({str(k): v for k, v in spec.goodput.items()}, rec, ok, n_sent, dur)
            if spec.goodput
            else None
        ),
        dropped=dropped,
        dropped_late=dropped_late,
        dropped_no_slot=dropped_slot,
        valid=not reasons,
        invalid_reasons=reasons,
        started_at=started_at,
        mode=spec.mode,
        arrival=spec.arrival if is_open else "closed",
        shape={**shape.model_dump(), "description": shape.describe()},
        workers=spec.workers,
        users=None if is_open else spec.users,
        target=spec.target,
        load_path=spec.load_path,
        stopped_early=stopped_early,
        generator_cpu=[round(c, 3) for c in (generator_cpu or [])],
        caveats=caveats,
        timeline=timeline(spec, rec, started_at, duration_s, gaps),
        records_path=records_path,
    )


def _spread(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"min": None, "mean": None, "max": None}
    return {
        "min": float(values.min()),
        "mean": round(float(values.mean()), 3),
        "max": float(values.max()),
    }


def workload_stats(
    spec: LoadSpec, pool: SamplePool, sent: np.ndarray, ok: np.ndarray
) -> WorkloadStats:
    prompts = np.asarray(pool.prompt_tokens)
    outputs = np.asarray(pool.output_tokens)
    sent_samples = sent["sample"][sent["sample"] >= 0]
    source = spec.workload or spec.trace
    forced = source is not None and source.force_output and spec.stream
    mismatches = None
    if forced:
        known = ok[(ok["sample"] >= 0) & (ok["tokens"] >= 0)]
        mismatches = int((known["tokens"] != outputs[known["sample"]]).sum())
    return WorkloadStats(
        samples=len(pool.bodies),
        exact_prompts=pool.exact_prompts,
        prompt_tokens=_spread(prompts[sent_samples]),
        max_tokens=_spread(outputs[sent_samples]),
        output_mismatches=mismatches,
    )


def goodput(
    slo_ms: Mapping[str, float], rec: np.ndarray, ok: np.ndarray, n_sent: int, duration_s: float
) -> Goodput:
    """vLLM's definition: good = succeeded and every listed metric <= its threshold; a request
    of at most one token has TPOT 0. Times from the intended send time, like every latency."""
    good = ok.copy()
    if "e2el" in slo_ms:
        good &= (rec["done"] - rec["intended"]) * 1000 <= slo_ms["e2el"]
    if "ttft" in slo_ms:
        good &= (rec["first"] - rec["intended"]) * 1000 <= slo_ms["ttft"]  # NaN: not good
    if "tpot" in slo_ms:
        good &= (np.nan_to_num(R.tpot_s(rec), nan=0.0) * 1000 <= slo_ms["tpot"]) & (
            rec["tokens"] >= 0
        )
    n_good, n_ok = int(good.sum()), int(ok.sum())
    return Goodput(
        slo_ms=dict(slo_ms),
        good=n_good,
        attainment=round(n_good / n_sent, 4) if n_sent else None,
        of_successful=round(n_good / n_ok, 4) if n_ok else None,
        rate_rps=round(n_good / duration_s, 3),
    )


def stream_stats(ok: np.ndarray, inter_chunk_s: np.ndarray | None = None) -> StreamStats:
    """TTFT, TPOT, inter-chunk latency and output tokens of the ok (complete) streams."""
    ttft = (ok["first"] - ok["intended"])[~np.isnan(ok["first"])]
    tokens = ok["tokens"]
    known = tokens >= 0
    tpot = R.tpot_s(ok)
    tpot = tpot[~np.isnan(tpot)]
    counted = tokens[known]
    return StreamStats(
        ttft_ms=percentiles(ttft, STREAM_PCTS),
        tpot_ms=percentiles(tpot, STREAM_PCTS),
        itl_ms=percentiles(
            np.asarray(inter_chunk_s if inter_chunk_s is not None else [], dtype=np.float64),
            STREAM_PCTS,
        ),
        output_tokens=_spread(counted),
        without_usage=int((~known).sum()),
        chunks_per_token=(
            round(float(ok["chunks"][known].sum() / counted.sum()), 3) if counted.sum() else None
        ),
        finish_reasons={
            R.FINISH_REASONS.get(int(code), "none"): int(n)
            for code, n in zip(*np.unique(ok["finish"], return_counts=True), strict=True)
        },
    )


def timeline(
    spec: LoadSpec,
    rec: np.ndarray,
    started_at: float,
    duration_s: float,
    gaps: np.ndarray | None = None,
) -> list[Bucket]:
    """Per-second buckets by intended send time (a stream's chunk gaps by its send time)."""
    n = max(1, math.ceil(duration_s - 1e-9))
    if gaps is None:
        gaps = np.zeros((2, 0))
    gap_idx = np.clip(np.floor(gaps[0]).astype(int), 0, n - 1)
    requested = requested_per_bucket(spec, n) if spec.mode == "open" else None
    idx = np.clip(np.floor(rec["intended"]).astype(int), 0, n - 1) if len(rec) else np.zeros(0, int)
    order = np.argsort(idx, kind="stable")
    rec_sorted, idx_sorted = rec[order], idx[order]
    bounds = np.searchsorted(idx_sorted, np.arange(n + 1))
    out = []
    for i in range(n):
        sel = rec_sorted[bounds[i] : bounds[i + 1]]
        st = sel["status"]
        dropped = int(np.isin(st, R.DROPPED).sum())
        sent = ~np.isnan(sel["sent"]) & ~np.isin(st, R.DROPPED)
        ok = R.is_ok(st)
        width = min(1.0, duration_s - i) if duration_s > i else 1.0
        d = (sel["sent"] - sel["intended"])[sent]
        streamed = sel[ok & ~np.isnan(sel["first"])] if spec.stream else sel[:0]
        per_token = R.tpot_s(streamed)
        out.append(
            Bucket(
                t=float(i),
                epoch=started_at + i,
                scheduled=len(sel),
                sent=int(sent.sum()),
                ok=int(ok.sum()),
                errors=error_counts(st),
                dropped=dropped,
                latency_ms=percentiles((sel["done"] - sel["intended"])[ok]),
                ttft_ms=percentiles(streamed["first"] - streamed["intended"])
                if spec.stream
                else {},
                tpot_ms=percentiles(per_token[~np.isnan(per_token)]) if spec.stream else {},
                itl_ms=percentiles(gaps[1][gap_idx == i]) if spec.stream else {},
                schedule_delay_p99_ms=percentiles(d, (99.0,))["p99"],
                rate_rps=round(int(sent.sum()) / max(width, 1e-9), 3),
                requested_rps=round(float(requested[i]), 3) if requested is not None else None,
            )
        )
    return out
