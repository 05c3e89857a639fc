"""Streaming load: TTFT, time per output token and output tokens read from SSE as it arrives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import InputError
from harness.load import LoadSpec, run_load
from harness.load import records as R
from harness.load.sse import read_stream
from tests.load.test_load_engine import Server, _ms


def _spec(url: str, **kw: Any) -> LoadSpec:
    kw.setdefault("body", {"prompt": "hi", "max_tokens": 5})
    return LoadSpec(target=url, stream=True, arrival="constant", **kw)


def test_ttft_and_tpot_follow_the_servers_timing(loopback_server: Server, tmp_path: Path) -> None:
    url = loopback_server("--sse", "5", "--delay-ms", "60", "--gap-ms", "25")
    r = run_load(_spec(url, rate_rps=10, duration_s=2), tmp_path)
    assert r.valid and r.ok == r.requests == 20, (r.invalid_reasons, r.errors)
    st = r.stream
    assert st is not None and st.without_usage == 0
    assert st.output_tokens == {"min": 5.0, "mean": 5.0, "max": 5.0}
    assert st.chunks_per_token == 1.0
    # never below what the server did: 60 ms to the first chunk, 25 ms between chunks
    assert 59.0 <= _ms(st.ttft_ms, "p50") < _ms(r.latency_ms, "p50")
    assert 24.0 <= _ms(st.tpot_ms, "p50") <= 200.0
    assert 24.0 <= _ms(st.itl_ms, "p50") <= 200.0  # 4 gaps per stream, pooled
    rec = r.records()
    assert (rec["chunks"] == 5).all() and (rec["first"] < rec["last"]).all()
    assert st.finish_reasons == {"length": 20}  # the last content chunk's finish_reason


def test_known_token_timings_are_measured_to_within_a_millisecond(
    loopback_server: Server, tmp_path: Path
) -> None:
    # first token 40 ms after the request, a token every 10 ms, and every 5th stream stalls
    # 120 ms once: 8 of the 240 gaps (3.3 %) are stalls, so ITL p99 shows them, p50 / p90 not.
    # The server logs when it wrote each chunk: the client's times are held to those.
    log = tmp_path / "server.jsonl"
    url = loopback_server(
        "--sse", "7", "--delay-ms", "40", "--gap-ms", "10", "--stall-every", "5",
        "--stall-ms", "120", "--log", str(log),
    )  # fmt: skip
    r = run_load(_spec(url, rate_rps=20, duration_s=2), tmp_path / "run")
    assert r.valid and r.ok == r.requests == 40, (r.invalid_reasons, r.errors)
    truth = sorted(
        (json.loads(line) for line in log.read_text().splitlines()), key=lambda s: s["received"]
    )
    rec = np.sort(r.records(), order="sent")
    first = rec["first"] + r.started_at - np.array([s["chunks"][0] for s in truth])
    last = rec["last"] + r.started_at - np.array([s["chunks"][-1] for s in truth])
    # Seen within 1 ms of written: measured 0.1-0.4 ms on a quiet machine (the server stamps
    # after its flush, so a read can come first). Held for three in four chunks, not all: on
    # a machine busy elsewhere either side can be descheduled for a few ms around one chunk.
    for seen in (first, last):
        assert float(np.percentile(np.abs(seen), 75)) < 0.001, seen
    server_gaps = np.concatenate([np.diff(s["chunks"]) for s in truth])
    st = r.stream
    assert st is not None and (server_gaps > 0.1).sum() == 8  # streams 5, 10, ... 40
    for q, within in (("p50", 1.0), ("p90", 1.0), ("p99", 5.0)):  # pooled gaps vs the server's
        want = float(np.percentile(server_gaps, float(q[1:]), method="inverted_cdf")) * 1000
        assert abs(_ms(st.itl_ms, q) - want) < within, (q, st.itl_ms, want)
    # the stall shows at p99, not at p90 (p90 11.07 ms once, on a machine busy elsewhere)
    assert _ms(st.itl_ms, "p90") < 60.0 and _ms(st.itl_ms, "p99") >= 120.0
    # per second too: both seconds hold stalled streams
    worst = [b.itl_ms.get("max") or 0.0 for b in r.timeline]
    assert [i for i, ms in enumerate(worst) if ms >= 120.0] == [0, 1]
    # TTFT is from the intended send time: the server's 40 ms and never less, plus whatever
    # the send lagged (so held to the server's first chunk, not to 40 ms: a CI run measured
    # p50 45.3 ms on a machine busy elsewhere, which the server's log showed too)
    truth_ttft = (np.array([s["chunks"][0] for s in truth]) - r.started_at - rec["intended"]) * 1000
    assert _ms(st.ttft_ms, "p50") >= 40.0
    assert abs(_ms(st.ttft_ms, "p50") - float(np.percentile(truth_ttft, 50))) < 1.0
    # TPOT averages a stall over its stream: (5 x 10 + 120) / 6 ms
    assert 10.0 <= _ms(st.tpot_ms, "p50") < 11.0 and 28.3 <= _ms(st.tpot_ms, "max") < 32.0


def test_closed_loop_streams_too(loopback_server: Server, tmp_path: Path) -> None:
    url = loopback_server("--sse", "3", "--gap-ms", "10")
    r = run_load(_spec(url, mode="closed", users=2, duration_s=2), tmp_path)
    assert r.ok > 10 and r.stream is not None
    assert r.stream.output_tokens["mean"] == 3.0


@pytest.mark.parametrize(
    ("end", "status"), [("error", R.STREAM_ERROR), ("cut", R.STREAM_INCOMPLETE)]
)
def test_a_200_stream_that_fails_is_an_error(
    loopback_server: Server, tmp_path: Path, end: str, status: int
) -> None:
    url = loopback_server("--sse", "2", "--sse-end", end)
    r = run_load(_spec(url, rate_rps=10, duration_s=1), tmp_path)
    assert r.ok == 0 and r.errors == {R.status_name(status): r.requests}


def test_a_usage_count_that_differs_from_the_chunks_is_reported(
    loopback_server: Server, tmp_path: Path
) -> None:
    url = loopback_server("--sse", "4", "--usage-tokens", "8")  # two tokens per chunk
    r = run_load(_spec(url, rate_rps=10, duration_s=1), tmp_path)
    assert r.stream is not None and r.stream.chunks_per_token == 0.5


def test_stream_needs_a_body() -> None:
    with pytest.raises(InputError, match="stream"):
        LoadSpec(target="http://127.0.0.1:1", stream=True, body=None)
    spec = _spec("http://127.0.0.1:1", body={"prompt": "x", "stream_options": {"a": 1}})
    assert spec.request_body() == {
        "prompt": "x",
        "stream": True,
        "stream_options": {"a": 1, "include_usage": True},
    }


def test_sse_reader_conventions() -> None:
    lines = iter(
        [
            b": keep-alive\n",
            b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n',
            b"\n",
            b'data: {"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}\n',
            b'data: {"choices":[],"usage":{"completion_tokens":1}}\n',
            b"data: [DONE]\n",
            b"data: never read\n",
        ]
    )
    clock = iter(np.arange(10.0))
    t = read_stream(lambda: next(lines, b""), lambda: float(next(clock)))
    # the role chunk counts as the first (vLLM sends it with the first token)
    assert (t.first, t.last, t.chunks, t.tokens, t.done, t.error) == (0.0, 1.0, 2, 1, True, None)
    assert t.gaps == [1.0] and t.finish_reason == "stop"


def test_goodput_counts_requests_meeting_every_slo(loopback_server: Server, tmp_path: Path) -> None:
    url = loopback_server("--sse", "3", "--delay-ms", "40", "--gap-ms", "5")
    generous = run_load(_spec(url, rate_rps=10, duration_s=1, goodput={"ttft": 5000}), tmp_path)
    assert generous.goodput is not None and generous.goodput.attainment == 1.0
    assert generous.goodput.good == generous.ok == 10
    strict = run_load(_spec(url, rate_rps=10, duration_s=1, goodput={"ttft": 10}), tmp_path / "b")
    assert strict.goodput is not None  # the server waits 40 ms before the first chunk
    assert strict.goodput.good == 0 and strict.goodput.attainment == 0.0


def test_goodput_on_stream_metrics_needs_a_stream() -> None:
    with pytest.raises(InputError, match="needs a streaming run"):
        LoadSpec(target="http://127.0.0.1:1", body={"prompt": "x"}, goodput={"ttft": 100})
    LoadSpec(target="http://127.0.0.1:1", body={"prompt": "x"}, goodput={"e2el": 100})
