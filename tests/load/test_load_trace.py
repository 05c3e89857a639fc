"""Trace replay: Azure and Mooncake files read as published, replayed on their own schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import resources
from harness.errors import InputError
from harness.load import LoadSpec, run_load
from harness.load.schedule import arrival_times, requested_per_bucket
from harness.load.trace import TraceReplay, read_trace
from harness.load.workload import SharedPrefix, Workload, build_pool, build_trace_pool
from tests.load.test_load_engine import Server

AZURE = resources.traces_dir() / "azure-sample.csv"
MOONCAKE = resources.traces_dir() / "mooncake-sample.jsonl"


@pytest.mark.parametrize("path", [AZURE, MOONCAKE], ids=["azure", "mooncake"])
def test_the_shipped_samples_read_as_their_formats(path: Path) -> None:
    rows = read_trace(path)
    assert len(rows) == 120 and rows[0].offset_s == 0.0
    offsets = [r.offset_s for r in rows]
    assert offsets == sorted(offsets) and 55.0 < offsets[-1] <= 60.0
    assert all(1 <= r.prompt_tokens <= 480 and r.output_tokens >= 1 for r in rows)


def test_azure_timestamps_keep_their_seventh_digit_out_of_the_way(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:47.2500000,10,3\n"
        "2023-11-16 18:15:46.0000001,20,4\n"
    )
    rows = read_trace(f)  # sorted by time, offsets from the first request
    assert [(r.offset_s, r.prompt_tokens) for r in rows] == [(0.0, 20), (1.25, 10)]


@pytest.mark.parametrize(
    ("name", "text", "field"),
    [
        ("a.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,3\n", "header"),
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,3,4\n", "line 2: TIMESTAMP"),
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,0,4\n",
         "line 2: ContextTokens"),
        ("a.jsonl", '{"timestamp": 0, "input_length": 5}\n', "line 1"),
        ("a.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": "x"}\n',
         "line 1: output_length"),
        ("a.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 2, "hash_ids": "1"}\n',
         "line 1: hash_ids"),
        ("a.txt", "whatever", "trace.format"),
    ],
)  # fmt: skip
def test_a_bad_trace_names_file_line_and_field(
    tmp_path: Path, name: str, text: str, field: str
) -> None:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(InputError) as err:
        read_trace(f)
    assert str(f) in str(err.value) and field in str(err.value)


def test_a_trace_sets_the_schedule_rate_and_duration() -> None:
    trace = TraceReplay(path=AZURE, time_scale=10)
    spec = LoadSpec(target="http://127.0.0.1:1", trace=trace, arrival="trace")
    offsets = trace.offsets()
    assert spec.duration_s == pytest.approx(offsets[-1] + 1.0)  # the replay plus its last second
    assert spec.rate_rps == pytest.approx(120 / spec.duration_s)
    assert np.array_equal(arrival_times(spec), offsets)  # its own times, 10x faster
    per_s = requested_per_bucket(spec, int(np.ceil(spec.duration_s)))
    assert per_s.sum() == 120 and spec.peak_rate() == per_s.max()
    short = LoadSpec(target="http://127.0.0.1:1", trace=trace, arrival="trace", duration_s=2.0)
    assert len(arrival_times(short)) == int((offsets < 2.0).sum())


@pytest.mark.parametrize(
    "kw",
    [
        {"arrival": "trace"},  # no trace
        {"trace": {"path": str(AZURE)}},  # a trace with another arrival
        {"trace": {"path": str(AZURE)}, "arrival": "trace", "mode": "closed"},
    ],
)
def test_a_trace_goes_with_its_own_arrival_only(kw: dict) -> None:
    with pytest.raises(InputError, match="trace"):
        LoadSpec(target="http://127.0.0.1:1", **kw)


def test_trace_bodies_follow_each_row_and_share_prefixes_by_hash_id() -> None:
    trace = TraceReplay(path=MOONCAKE, block_tokens=64)
    pool = build_trace_pool(trace, {"model": "m", "prompt": "dropped"})
    rows = trace.rows()
    assert [len(b["prompt"]) for b in pool.bodies] == [r.prompt_tokens for r in rows]
    assert [b["max_tokens"] for b in pool.bodies] == [r.output_tokens for r in rows]
    assert all(b["model"] == "m" and b["ignore_eos"] for b in pool.bodies)
    by_first: dict[int, set[str]] = {}
    for r, b in zip(rows, pool.bodies, strict=True):
        if r.prompt_tokens >= 64:
            by_first.setdefault(r.hash_ids[0], set()).add(b["prompt"][:64])
    assert len(by_first) == 4 and all(len(v) == 1 for v in by_first.values())
    assert len(set.union(*by_first.values())) == 4  # different ids, different blocks


def test_a_workload_can_share_prefixes() -> None:
    w = Workload.model_validate(
        {
            "prompt_tokens": {"kind": "uniform", "min": 40, "max": 80},
            "output_tokens": {"mean": 4},
            "samples": 12,
            "shared_prefix": {"tokens": 32, "groups": 3},
        }
    )
    pool = build_pool(w, {}, seed=1)
    heads = [b["prompt"][:32] for b in pool.bodies]
    assert len(set(heads)) == 3 and heads[0] == heads[3] == heads[6]
    assert [len(b["prompt"]) for b in pool.bodies] == pool.prompt_tokens
    with pytest.raises(ValueError, match="below the shortest prompt"):
        Workload(
            prompt_tokens={"kind": "uniform", "min": 10, "max": 80},
            output_tokens={"mean": 4},
            shared_prefix=SharedPrefix(tokens=32),
        )


def test_a_replay_sends_each_row_at_its_time(loopback_server: Server, tmp_path: Path) -> None:
    url = loopback_server("--sse-from-body")
    trace = TraceReplay(path=AZURE, time_scale=20, max_rows=40)
    spec = LoadSpec(target=url, trace=trace, arrival="trace", stream=True, body={"temperature": 0})
    r = run_load(spec, tmp_path)
    assert r.valid and r.ok == r.requests == 40, (r.invalid_reasons, r.errors)
    rec = np.sort(r.records(), order="intended")
    assert np.allclose(rec["intended"], trace.offsets())
    assert list(rec["sample"]) == list(range(40))  # request n replayed row n
    rows = trace.rows()
    assert list(rec["tokens"]) == [row.output_tokens for row in rows]
    assert r.workload is not None and r.workload.output_mismatches == 0
    assert r.arrival == "trace"
    assert sum(b.requested_rps or 0 for b in r.timeline) == pytest.approx(40)


def test_multi_turn_conversations_carry_their_history() -> None:
    w = Workload.model_validate(
        {
            "prompt_tokens": {"kind": "uniform", "min": 10, "max": 30},
            "output_tokens": {"kind": "uniform", "min": 3, "max": 9},
            "samples": 6,
            "chat": True,
            "multi_turn": {"turns": 3},
        }
    )
    pool = build_pool(w, {"model": "m"}, seed=2)
    turns = [[m["role"] for m in b["messages"]] for b in pool.bodies]
    assert turns[0] == ["user"] and turns[3] == ["user"]  # two conversations of three turns
    assert turns[2] == ["user", "assistant", "user", "assistant", "user"]
    first, second, third = (b["messages"] for b in pool.bodies[:3])
    assert second[:1] == first and third[:3] == second  # the history is replayed
    assert len(third[1]["content"]) == pool.output_tokens[0]  # an answer of its turn's length
    assert [len(b["messages"][-1]["content"]) for b in pool.bodies] == pool.prompt_tokens
    assert len({b["messages"][-1]["content"] for b in pool.bodies}) == 6  # every turn its own
    with pytest.raises(ValueError, match="multi_turn needs chat"):
        Workload.model_validate({**w.model_dump(), "chat": False})
