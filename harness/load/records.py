"""Per-request record layout shared by the locust worker and the analysis (no gevent here).

One row per scheduled request; times are seconds relative to the run start (`started_at`).
Latency from the intended send time is `done - intended`; schedule delay is `sent - intended`.
Streaming runs also fill `first` / `last` (arrival of the first / last SSE chunk that carries
choices), `chunks` (how many did) and `tokens` (the usage chunk's `completion_tokens`, -1 when
the server sent none); TTFT from the intended send time is `first - intended`. With a workload,
`sample` is the index of the body sent in the run's sample pool (-1 without one), and `finish`
the stream's last `finish_reason` (FINISH_REASONS; 0 when none came).
"""

from __future__ import annotations

import numpy as np

RECORD_DTYPE = np.dtype(
    [
        ("intended", "<f8"),
        ("sent", "<f8"),
        ("done", "<f8"),
        ("status", "<i2"),
        ("first", "<f8"),
        ("last", "<f8"),
        ("chunks", "<i4"),
        ("tokens", "<i4"),
        ("sample", "<i4"),
        ("finish", "<i1"),
    ]
)

#: a stream's last `finish_reason` (records' `finish`); 0 = none seen (unstreamed, or cut)
FINISH_REASONS = {1: "stop", 2: "length", 3: "abort", 4: "other"}
FINISH_CODES = {name: code for code, name in FINISH_REASONS.items()}

# status codes below 100 are not HTTP statuses
NOT_SENT = 0  # never attempted (after a stop); dropped from the merged file
TIMEOUT = -1
CONNECTION = -2
OTHER_ERROR = -3
DROPPED_LATE = -4  # generator was behind by more than max_lag_s
DROPPED_NO_SLOT = -5  # every in-flight slot was busy
STREAM_ERROR = -6  # a 200 stream that carried an SSE error event
STREAM_INCOMPLETE = -7  # a 200 stream that ended without `data: [DONE]`

ERROR_NAMES = {
    TIMEOUT: "timeout",
    CONNECTION: "connection",
    OTHER_ERROR: "other",
    STREAM_ERROR: "stream_error",
    STREAM_INCOMPLETE: "stream_incomplete",
}
DROPPED = (DROPPED_LATE, DROPPED_NO_SLOT)


def empty(n: int) -> np.ndarray:
    arr = np.zeros(n, dtype=RECORD_DTYPE)
    for name in ("sent", "done", "first", "last"):
        arr[name] = np.nan
    arr["tokens"] = -1
    arr["sample"] = -1
    return arr


def status_name(code: int) -> str:
    """'429', '503', 'timeout', 'connection'..."""
    return ERROR_NAMES.get(code, str(code))


def is_ok(status: np.ndarray) -> np.ndarray:
    return (status >= 200) & (status < 400)


def tpot_s(rec: np.ndarray) -> np.ndarray:
    """Per request (last chunk - first chunk) / (output tokens - 1); NaN where there is no
    second token or no timing (goodput counts those as TPOT 0, as vLLM does)."""
    tokens = rec["tokens"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tokens > 1, (rec["last"] - rec["first"]) / (tokens - 1), np.nan)
