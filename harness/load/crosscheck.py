"""Client vs server: what the load generator measured beside the server's own histograms.

The server's `vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds` and
`vllm:e2e_request_latency_seconds` (vLLM's, and the reference service's under the same names)
are read before and after a run; the difference of their `_sum` / `_count` is the server's mean
over the run's requests. Beside it, the client's mean over the same requests measured from the
actual send time (the server cannot see the generator's lag): TTFT (first chunk - sent), ITL as
the token-weighted TPOT (sum of last - first over sum of tokens - 1: what the server's per-token
gaps average to, whatever the chunking), E2E (done - sent).

The client sees more than the server: the connection, the API server's own work before its
engine sees a request (parsing, tokenizing, admission) and the SSE framing are outside the
server's histograms (vLLM's too: they start at the engine's arrival time), 3-11 ms here on two
cores. A gap above `max(ABS_TOLERANCE_MS, REL_TOLERANCE x server)` says something more sits
between them (a loaded generator, a proxy, other traffic to the server), and is a caveat on
any verdict built on the client's numbers.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from harness import prom
from harness.load import records as R
from harness.load.result import LoadResult

HISTOGRAMS = {
    "ttft": "vllm:time_to_first_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
}
ABS_TOLERANCE_MS = 15.0
REL_TOLERANCE = 0.25

Snapshot = dict[str, tuple[float, float]]  # metric -> (sum, count)


class Agreement(BaseModel):
    metric: str
    server_mean_ms: float
    server_count: int
    client_mean_ms: float
    client_count: int
    diff_ms: float = Field(description="client - server")
    agrees: bool


class CrossCheck(BaseModel):
    """Per metric the server exposes: both means and whether they agree."""

    source: str = Field(description="the /metrics URL read before and after")
    agreements: list[Agreement] = Field(default_factory=list)
    missing: list[str] = Field(
        default_factory=list, description="histograms the server does not expose"
    )
    unobserved: list[str] = Field(
        default_factory=list,
        description="histograms the client could not match (TTFT and ITL need streams)",
    )

    @property
    def caveats(self) -> list[str]:
        return [
            f"client and server disagree on {a.metric}: mean {a.client_mean_ms:g} ms measured "
            f"here vs {a.server_mean_ms:g} ms by the server ({a.diff_ms:+g} ms): something sits "
            "between them (a loaded generator, a proxy, other traffic)"
            for a in self.agreements
            if not a.agrees
        ]


def snapshot(metrics_url: str) -> Snapshot:
    """(sum, count) of each histogram the server at `metrics_url` exposes now."""
    samples = prom.scrape(metrics_url)
    out: Snapshot = {}
    for key, name in HISTOGRAMS.items():
        total, count = prom.total(samples, name + "_sum"), prom.total(samples, name + "_count")
        if total is not None and count is not None:
            out[key] = (total, count)
    return out


def snapshot_all(metrics_urls: list[str]) -> Snapshot:
    """The servers' histograms added up: every replica behind a Service (a histogram counts
    only where all of them expose it)."""
    snaps = [snapshot(u) for u in metrics_urls]
    keys = set.intersection(*(set(s) for s in snaps)) if snaps else set()
    return {k: (sum(s[k][0] for s in snaps), sum(s[k][1] for s in snaps)) for k in keys}


def _client_means(result: LoadResult) -> dict[str, tuple[float | None, int]]:
    rec = result.records()
    ok = rec[R.is_ok(rec["status"])]
    streamed = ok[~np.isnan(ok["first"])]
    multi = streamed[streamed["tokens"] > 1]
    token_gaps = float((multi["tokens"] - 1).sum())

    def mean(values: np.ndarray) -> tuple[float | None, int]:
        return (round(float(values.mean()) * 1000, 3) if len(values) else None), len(values)

    return {
        "ttft": mean(streamed["first"] - streamed["sent"]),
        "itl": (
            round(float((multi["last"] - multi["first"]).sum()) / token_gaps * 1000, 3)
            if token_gaps
            else None,
            int(token_gaps),
        ),
        "e2e": mean(ok["done"] - ok["sent"]),
    }


def compare(
    metrics_url: str,
    before: Snapshot,
    after: Snapshot,
    result: LoadResult,
    abs_tolerance_ms: float = ABS_TOLERANCE_MS,
) -> CrossCheck:
    """The run's means, client beside server, from two snapshots taken around it.
    `abs_tolerance_ms`: the hop's allowance (more on a machine slower than two cores here)."""
    client = _client_means(result)
    out = CrossCheck(source=metrics_url)
    for key in HISTOGRAMS:
        if key not in before or key not in after:
            out.missing.append(HISTOGRAMS[key])
            continue
        d_sum = after[key][0] - before[key][0]
        d_count = after[key][1] - before[key][1]
        if d_count <= 0:
            continue
        server_ms = round(d_sum / d_count * 1000, 3)
        mean_ms, n = client[key]
        if mean_ms is None:  # an unstreamed run shows no first token or token gaps
            out.unobserved.append(HISTOGRAMS[key])
            continue
        diff = round(mean_ms - server_ms, 3)
        out.agreements.append(
            Agreement(
                metric=HISTOGRAMS[key],
                server_mean_ms=server_ms,
                server_count=int(d_count),
                client_mean_ms=mean_ms,
                client_count=n,
                diff_ms=diff,
                agrees=abs(diff) <= max(abs_tolerance_ms, REL_TOLERANCE * server_ms),
            )
        )
    return out
