"""SLA evaluation on synthetic per-request records (no subprocess): exact, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.backends.observe import ResourceSample
from harness.load import LoadSpec
from harness.load import records as R
from harness.load.analyze import build_result
from harness.load.result import LoadResult
from harness.load.runner import write_result
from harness.profile import SLO, GoodputSLO
from harness.sla import evaluate

T0 = 1_700_000_000.0


def _result(latency_s: np.ndarray, status: np.ndarray | None = None, rate: float = 100.0,
            duration: float = 10.0, delay_s: float = 0.001) -> LoadResult:  # fmt: skip
    spec = LoadSpec(
        target="http://127.0.0.1:1", rate_rps=rate, duration_s=duration, arrival="constant"
    )
    n = len(latency_s)
    rec = R.empty(n)
    rec["intended"] = np.arange(n) / rate
    rec["sent"] = rec["intended"] + delay_s
    rec["done"] = rec["intended"] + latency_s
    rec["status"] = 200 if status is None else status
    res = build_result(spec, rec, started_at=T0, duration_s=duration)
    res.attach_records(rec)
    return res


SLO_ = SLO(
    latency_ms={"p90": 300.0},
    availability=0.99,
    rate_rps=100.0,
    window_s=5.0,
    cpu_utilization_max=0.65,
)


def test_a_healthy_run_passes_every_check() -> None:
    rep = evaluate(_result(np.full(1000, 0.1)), SLO_)
    assert rep.passed, [c for c in rep.checks if not c.ok]
    names = {c.name for c in rep.checks}
    assert {"latency_p90", "availability", "achieved_rate", "generator_valid"} <= names
    assert rep.breach_seconds == 0 and len(rep.windows) == 2
    assert rep.error_budget.burned_errors == 0 and rep.goodput is None  # no goodput SLO
    assert rep.verdict("steady", "local").status == "pass"


def test_latency_breach_is_located_in_windows_and_seconds() -> None:
    lat = np.full(1000, 0.1)
    lat[300:500] = 0.8  # seconds 3 and 4 are slow
    rep = evaluate(_result(lat), SLO_)
    p90 = next(c for c in rep.checks if c.name == "latency_p90")
    assert not p90.ok and p90.measured == pytest.approx(800.0)
    assert rep.breach_seconds == 2
    assert rep.breach_intervals == [(T0 + 3, T0 + 5)]
    assert [w.breached for w in rep.windows] == [True, False]
    assert not rep.passed and rep.verdict("x", "local").status == "fail"


def test_errors_burn_the_budget() -> None:
    status = np.full(1000, 200, dtype=np.int16)
    status[:15] = 429
    status[15:20] = 503
    rep = evaluate(_result(np.full(1000, 0.05), status), SLO_)
    av = next(c for c in rep.checks if c.name == "availability")
    assert av.measured == pytest.approx(0.98) and not av.ok
    assert "429: 15" in av.note and "503: 5" in av.note
    b = rep.error_budget
    assert b.allowed_errors == pytest.approx(10.0) and b.burned_errors == 20
    assert b.burned_fraction == pytest.approx(2.0)
    assert b.budget_minutes_per_30d == pytest.approx(0.01 * 43200)
    assert b.burned_minutes_per_30d_equivalent == pytest.approx(0.02 * 43200)
    assert rep.breach_seconds == 1  # all errors fall in second 0


def test_an_invalid_generator_run_never_passes() -> None:
    res = _result(np.full(1000, 0.05), delay_s=0.05)  # 50 ms schedule delay
    assert not res.valid and "schedule delay" in res.invalid_reasons[0]
    rep = evaluate(res, SLO_, check_rate=False)
    assert not rep.passed
    assert not next(c for c in rep.checks if c.name == "generator_valid").ok


def test_rate_goodput_and_cpu_checks() -> None:
    slo = SLO_.model_copy(update={"goodput": GoodputSLO(e2el_ms=300.0, min_attainment=0.95)})
    lat = np.full(500, 0.1)
    lat[:50] = 0.5
    res = _result(lat, rate=50.0)
    samples = [
        ResourceSample(
            time=T0 + t, pod="web-0", cpu_cores=0.5, cpu_request_cores=1.0, memory_bytes=100
        )
        for t in range(10)
    ] + [
        ResourceSample(
            time=T0 + 5, pod="web-1", cpu_cores=0.9, cpu_request_cores=1.0, memory_bytes=300
        )
    ]
    rep = evaluate(res, slo, cpu_samples=samples)
    by = {c.name: c for c in rep.checks}
    assert not by["achieved_rate"].ok and by["achieved_rate"].measured == 50.0
    assert by["goodput"].measured == pytest.approx(0.9) and not by["goodput"].ok
    assert by["cpu_utilization"].measured == pytest.approx(0.9) and not by["cpu_utilization"].ok
    assert rep.cpu is not None and rep.cpu.memory_max_bytes == 300
    ok = evaluate(res, slo, rate_rps=50.0)
    assert next(c for c in ok.checks if c.name == "achieved_rate").ok


def test_a_sparse_random_schedule_is_not_held_against_the_server() -> None:
    # A 100 req/s random schedule that drew only 900 arrivals in 10 s, every one served: the rate
    # check holds (the server did all it was offered); the nominal rate is still the claim.
    spec = LoadSpec(target="http://127.0.0.1:1", rate_rps=100.0, duration_s=10.0, arrival="poisson")
    rec = R.empty(900)
    rec["intended"] = np.sort(np.random.default_rng(1).uniform(0, 10, 900))
    rec["sent"] = rec["intended"] + 0.001
    rec["done"] = rec["intended"] + 0.1
    rec["status"] = 200
    res = build_result(spec, rec, started_at=T0, duration_s=10.0)
    res.attach_records(rec)
    assert res.requested_rate == 100.0 and res.scheduled == 900
    check = next(c for c in evaluate(res, SLO_).checks if c.name == "achieved_rate")
    assert check.ok and check.target == 100.0 and "drew 90%" in check.note
    served_half = rec.copy()
    served_half["sent"][::2] = np.nan  # half dropped behind schedule: the run fell short
    served_half["done"][::2] = np.nan
    served_half["status"][::2] = R.DROPPED_LATE
    res2 = build_result(spec, served_half, started_at=T0, duration_s=10.0)
    res2.attach_records(served_half)
    assert not next(c for c in evaluate(res2, SLO_).checks if c.name == "achieved_rate").ok


def test_evaluate_from_a_written_load_json(tmp_path: Path) -> None:
    res = _result(np.full(1000, 0.1))
    np.save(tmp_path / "records.npy", res.records())
    res.records_path = str(tmp_path / "records.npy")
    write_result(res, tmp_path)
    again = LoadResult.load(tmp_path)
    assert again.records_path == str(tmp_path / "records.npy")
    rep = evaluate(again, SLO_.model_copy(update={"latency_ms": {"p99.9": 150.0}}))
    assert rep.passed


def _streamed(
    ttft_s: np.ndarray, tpot_s: float, tokens: int = 9, rate: float = 100.0
) -> LoadResult:
    """Streams of `tokens` tokens: first token `ttft_s` after the intended time, then one every
    `tpot_s` (so the end-to-end latency is ttft + (tokens - 1) x tpot)."""
    spec = LoadSpec(
        target="http://127.0.0.1:1",
        rate_rps=rate,
        duration_s=len(ttft_s) / rate,
        arrival="constant",
        stream=True,
        body={"prompt": "x", "max_tokens": tokens},
    )
    rec = R.empty(len(ttft_s))
    rec["intended"] = np.arange(len(ttft_s)) / rate
    rec["sent"] = rec["intended"] + 0.001
    rec["first"] = rec["intended"] + ttft_s
    rec["last"] = rec["first"] + (tokens - 1) * tpot_s
    rec["done"] = rec["last"] + 0.0005
    rec["chunks"] = tokens
    rec["tokens"] = tokens
    rec["status"] = 200
    res = build_result(spec, rec, started_at=T0, duration_s=len(ttft_s) / rate)
    res.attach_records(rec)
    return res


STREAM_SLO = SLO_.model_copy(
    update={"ttft_ms": {"p90": 100.0}, "tpot_ms": {"p90": 20.0}, "latency_ms": {}}
)


def test_ttft_and_tpot_targets_judge_streams_per_window() -> None:
    ttft = np.full(1000, 0.05)
    ttft[600:700] = 0.4  # second 6: the first token is late, the stream then runs at speed
    rep = evaluate(_streamed(ttft, 0.01), STREAM_SLO)
    by = {c.name: c for c in rep.checks}
    assert by["ttft_p90"].ok and by["ttft_p90"].measured == pytest.approx(50.0)
    assert by["tpot_p90"].ok and by["tpot_p90"].measured == pytest.approx(10.0)
    assert rep.breach_seconds == 1 and rep.breach_intervals == [(T0 + 6, T0 + 7)]
    assert "ttft p90 400 ms > 100 ms" in rep.windows[1].reasons
    slow = evaluate(_streamed(np.full(1000, 0.05), 0.03), STREAM_SLO)  # 30 ms per token
    assert not next(c for c in slow.checks if c.name == "tpot_p90").ok
    assert slow.breach_seconds == 10


def test_stream_targets_on_an_unstreamed_run_are_inconclusive_not_passed() -> None:
    slo = STREAM_SLO.model_copy(update={"itl_ms": {"p99": 50.0}})
    rep = evaluate(_result(np.full(1000, 0.1)), slo)
    unobserved = {c.name for c in rep.checks if c.inconclusive}
    assert unobserved == {"ttft_p90", "tpot_p90", "itl_p99"} and not rep.passed
    assert rep.verdict("steady", "local").status == "inconclusive"


def test_goodput_follows_vllm_per_request_thresholds() -> None:
    ttft = np.full(1000, 0.05)
    ttft[:30] = 0.3  # 3 % miss the TTFT threshold
    res = _streamed(ttft, 0.01)
    res.records()["status"][30:40] = 503  # 1 % fail
    good = GoodputSLO(ttft_ms=200.0, tpot_ms=15.0, min_attainment=0.95)
    rep = evaluate(res, SLO_.model_copy(update={"goodput": good, "latency_ms": {}}))
    check = next(c for c in rep.checks if c.name == "goodput")
    assert check.ok and check.measured == pytest.approx(0.96)
    assert rep.goodput is not None and rep.goodput.good == 960
    strict = good.model_copy(update={"min_attainment": 0.97})
    assert not next(
        c
        for c in evaluate(res, SLO_.model_copy(update={"goodput": strict})).checks
        if c.name == "goodput"
    ).ok
    unstreamed = evaluate(_result(np.full(1000, 0.1)), SLO_.model_copy(update={"goodput": good}))
    assert next(c for c in unstreamed.checks if c.name == "goodput").inconclusive


def test_slo_fields_fail_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="goodput_min was replaced by goodput"):
        SLO.model_validate({"goodput_min": 0.9})
    with pytest.raises(ValueError, match="at least one of ttft_ms"):
        GoodputSLO(min_attainment=0.9)
    with pytest.raises(ValueError, match="ttft_ms key 'p1x'"):
        SLO(ttft_ms={"p1x": 1.0})
    assert SLO(ttft_ms={"p99": 1.0}).streamed and not SLO().streamed
    assert SLO(goodput=GoodputSLO(ttft_ms=1, min_attainment=0.5)).streamed
