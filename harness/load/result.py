"""`load.json`: the load run's result, computed from the per-request records (exact percentiles).

Open-loop latency is `done - intended` (from the scheduled send time); `service_latency_ms` is
`done - sent`, which is what a closed-loop tool such as locust alone would report. Requests and
errors are bucketed by their intended send time. Percentiles use the nearest-rank definition
(the value of the ceil(q*n)-th sample), as HdrHistogram does, so they are exact sample values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from harness.load import records as R

Pct = dict[str, float | None]
DEFAULT_PCTS = (50.0, 90.0, 99.0)

#: How the load reached the pods (`LoadSpec.load_path`, `LoadResult.load_path`).
LoadPath = Literal["service", "service-port-forward", "pod", "direct"]
LOAD_PATHS: dict[str, str] = {
    "service": "through the Service (balanced over its Ready endpoints)",
    "service-port-forward": "through kubectl port-forward to the Service: to one pod kubectl "
    "picked, not balanced by the Service",
    "pod": "to one pod directly (a targeted probe), not through the Service",
    "direct": "to the URL as given (how it reaches the pods is not known)",
}


def pct_key(q: float) -> str:
    return f"p{q:g}"


def percentiles(
    values: np.ndarray, qs: tuple[float, ...] = DEFAULT_PCTS, *, scale: float = 1000.0
) -> Pct:
    """Nearest-rank percentiles (+ max) of `values` (seconds) in ms; None when empty."""
    out: Pct = {}
    if values.size == 0:
        out.update({pct_key(q): None for q in qs})
        out["max"] = None
        return out
    v = np.percentile(values, qs, method="inverted_cdf") * scale
    out.update({pct_key(q): round(float(x), 3) for q, x in zip(qs, v, strict=True)})
    out["max"] = round(float(values.max()) * scale, 3)
    return out


def error_counts(status: np.ndarray) -> dict[str, int]:
    bad = status[~R.is_ok(status) & ~np.isin(status, (*R.DROPPED, R.NOT_SENT))]
    codes, counts = np.unique(bad, return_counts=True)
    return {R.status_name(int(c)): int(n) for c, n in zip(codes, counts, strict=True)}


class WindowStats(BaseModel):
    """Exact statistics for requests intended to start in [t0, t1) (epoch seconds)."""

    t0: float
    t1: float
    scheduled: int
    requests: int
    ok: int
    errors: dict[str, int]
    dropped: int
    availability: float | None = Field(description="ok / (requests + dropped); None when empty")
    latency_ms: Pct
    ttft_ms: Pct = Field(default_factory=dict, description="ok streams; empty without streams")
    tpot_ms: Pct = Field(default_factory=dict, description="ok streams of more than one token")
    rate_rps: float


class Bucket(BaseModel):
    t: float = Field(description="seconds from start")
    epoch: float
    scheduled: int
    sent: int
    ok: int
    errors: dict[str, int]
    dropped: int
    latency_ms: Pct
    ttft_ms: Pct = Field(default_factory=dict, description="ok streams; empty without streams")
    tpot_ms: Pct = Field(default_factory=dict)
    itl_ms: Pct = Field(default_factory=dict, description="chunk gaps of streams sent then")
    schedule_delay_p99_ms: float | None
    rate_rps: float
    requested_rps: float | None


class Goodput(BaseModel):
    """Requests that succeeded and met every per-request SLO (`LoadSpec.goodput`).

    `attainment` counts failed requests against it (as GuideLLM does, and as an SLO owner
    reads it); `of_successful` leaves them out (inference-perf's goodput %); `rate_rps` is good
    requests per second of the run (vLLM bench's request goodput)."""

    slo_ms: dict[str, float]
    good: int
    attainment: float | None
    of_successful: float | None
    rate_rps: float


class WorkloadStats(BaseModel):
    """What a workload's requests asked for, and (streaming) what came back."""

    samples: int
    exact_prompts: bool = Field(
        description="prompt lengths checked with the tokenizer (else ASCII bytes = tokens)"
    )
    prompt_tokens: dict[str, float | None] = Field(description="sent requests: min / mean / max")
    max_tokens: dict[str, float | None] = Field(description="sent requests: min / mean / max")
    output_mismatches: int | None = Field(
        description="ok streams whose usage tokens differ from the forced output length "
        "(None: not forced or not streamed)"
    )


class StreamStats(BaseModel):
    """What the SSE streams of the ok requests showed (`LoadSpec.stream`).

    TTFT is from the intended send time (coordinated-omission safe, like `latency_ms`). TPOT is
    per request, (last chunk - first chunk) / (output tokens - 1), over requests with more than
    one token, as vLLM's `bench serve` defines it; output tokens come from the usage chunk."""

    ttft_ms: Pct
    tpot_ms: Pct
    itl_ms: Pct = Field(
        default_factory=dict,
        description="every gap between consecutive content chunks, pooled over the ok streams "
        "(vLLM bench's ITL: chunk gaps; a chunk carrying several tokens is one gap)",
    )
    output_tokens: dict[str, float | None] = Field(description="min / mean / max per request")
    without_usage: int = Field(description="ok streams whose server sent no usage chunk")
    chunks_per_token: float | None = Field(
        description="content chunks / output tokens: 1 when every token came in its own chunk"
    )
    finish_reasons: dict[str, int] = Field(
        default_factory=dict, description="ok streams by their last finish_reason ('none')"
    )


class LoadResult(BaseModel):
    """The run's outcome, written to `load.json`."""

    requested_rate: float | None = Field(description="mean scheduled rate (open loop), req/s")
    achieved_rate: float
    duration_s: float
    scheduled: int = Field(description="requests in the schedule within the run")
    requests: int = Field(description="requests actually sent")
    ok: int
    errors: dict[str, int]
    latency_ms: Pct = Field(description="ok requests, from the intended send time")
    service_latency_ms: Pct = Field(description="ok requests, from the actual send time")
    schedule_delay_ms: Pct
    stream: StreamStats | None = None
    goodput: Goodput | None = None
    workload: WorkloadStats | None = None
    dropped: int
    dropped_late: int = 0
    dropped_no_slot: int = 0
    valid: bool
    invalid_reasons: list[str] = Field(default_factory=list)
    started_at: float
    mode: Literal["open", "closed"]
    arrival: str
    shape: dict[str, Any]
    workers: int = 1
    users: int | None = None
    target: str = ""
    load_path: LoadPath = Field(
        default="direct", description="how the load reached the pods (LOAD_PATHS)"
    )
    stopped_early: bool = False
    generator_cpu: list[float] = Field(
        default_factory=list, description="CPU share per worker (1 = one core)"
    )
    caveats: list[str] = Field(default_factory=list)
    timeline: list[Bucket] = Field(default_factory=list)
    records_path: str | None = None

    _records: np.ndarray | None = PrivateAttr(default=None)

    # records ---------------------------------------------------------------------------------
    def records(self) -> np.ndarray:
        """The per-request records (times relative to `started_at`); loaded lazily."""
        if self._records is None:
            if not self.records_path or not Path(self.records_path).exists():
                raise FileNotFoundError(f"per-request records not available ({self.records_path})")
            self._records = np.load(self.records_path)
        return self._records

    def attach_records(self, rec: np.ndarray) -> None:
        self._records = rec

    @property
    def end_epoch(self) -> float:
        return self.started_at + self.duration_s

    def window(
        self, t0_epoch: float, t1_epoch: float, qs: tuple[float, ...] = DEFAULT_PCTS
    ) -> WindowStats:
        """Exact stats for requests intended in [t0, t1) (epoch s), from the records."""
        rec = self.records()
        a, b = t0_epoch - self.started_at, t1_epoch - self.started_at
        return window_stats(rec, a, b, self.started_at, qs)

    @classmethod
    def load(cls, path: str | Path) -> LoadResult:
        """Read a `load.json` (a directory holding one works too)."""
        p = Path(path)
        if p.is_dir():
            p = p / "load.json"
        res = cls.model_validate_json(p.read_text())
        if res.records_path and not Path(res.records_path).is_absolute():
            res.records_path = str(p.parent / res.records_path)
        return res


def window_stats(
    rec: np.ndarray, a: float, b: float, started_at: float, qs: tuple[float, ...] = DEFAULT_PCTS
) -> WindowStats:
    sel = rec[(rec["intended"] >= a) & (rec["intended"] < b)]
    st = sel["status"]
    dropped = int(np.isin(st, R.DROPPED).sum())
    sent_mask = ~np.isnan(sel["sent"]) & ~np.isin(st, R.DROPPED)
    ok_mask = R.is_ok(st)
    requests = int(sent_mask.sum())
    ok = int(ok_mask.sum())
    denom = requests + dropped
    lat = (sel["done"] - sel["intended"])[ok_mask]
    streamed = sel[ok_mask & ~np.isnan(sel["first"])]
    ttft: Pct = {}
    tpot: Pct = {}
    if len(streamed):
        ttft = percentiles(streamed["first"] - streamed["intended"], qs)
        per_token = R.tpot_s(streamed)
        tpot = percentiles(per_token[~np.isnan(per_token)], qs)
    width = max(b - a, 1e-9)
    return WindowStats(
        t0=started_at + a,
        t1=started_at + b,
        scheduled=len(sel),
        requests=requests,
        ok=ok,
        errors=error_counts(st),
        dropped=dropped,
        availability=(ok / denom) if denom else None,
        latency_ms=percentiles(lat, qs),
        ttft_ms=ttft,
        tpot_ms=tpot,
        rate_rps=round(requests / width, 3),
    )
