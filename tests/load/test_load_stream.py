"""Streaming load: TTFT, time per output token and output tokens read from SSE as it arrives."""

from __future__ import annotations

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
            b'data: {"choices":[{"delta":{"content":"a"}}]}\n',
            b'data: {"choices":[],"usage":{"completion_tokens":1}}\n',
            b"data: [DONE]\n",
            b"data: never read\n",
        ]
    )
    clock = iter(np.arange(10.0))
    t = read_stream(lambda: next(lines, b""), lambda: float(next(clock)))
    # the role chunk counts as the first (vLLM sends it with the first token)
    assert (t.first, t.last, t.chunks, t.tokens, t.done, t.error) == (0.0, 1.0, 2, 1, True, None)
    assert t.gaps == [1.0]


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
