"""The step scheduler's budgets, order and shedding (no model)."""

from __future__ import annotations

import pytest

from reference_service.sampling import SamplingParams
from reference_service.scheduler import QueueFull, Scheduler, SchedulerConfig
from reference_service.sequence import Sequence


def seq(prompt_len: int, arrival: float = 0.0) -> Sequence:
    return Sequence([1] * prompt_len, SamplingParams(max_tokens=4), arrival=arrival)


def sched(**kw: float) -> Scheduler:
    cfg = {"max_num_seqs": 4, "max_num_batched_tokens": 100, "max_queue": 8, "max_queue_wait_s": 5}
    return Scheduler(SchedulerConfig(**{**cfg, **kw}))  # type: ignore[arg-type]


def test_admits_in_arrival_order_up_to_max_num_seqs() -> None:
    s = sched()
    seqs = [seq(5) for _ in range(6)]
    for x in seqs:
        s.add(x)
    plan = s.plan(now=1.0)
    assert plan.admit == seqs[:4] and list(s.waiting) == seqs[4:]


def test_the_token_budget_counts_running_decodes_and_stops_at_the_head() -> None:
    s = sched(max_num_batched_tokens=50)
    s.running = [seq(5), seq(5)]  # 2 decode tokens this step
    big, small = seq(60), seq(3)
    s.add(big)
    s.add(small)
    assert s.plan(now=1.0).admit == []  # the head does not fit: no overtaking (FCFS)
    s.running = []
    assert s.plan(now=1.0).admit == [big]  # alone it always starts (progress)


def test_queue_bound_and_expiry() -> None:
    s = sched(max_queue=2, max_queue_wait_s=1.0, max_num_seqs=1)
    old, new = seq(2, arrival=0.0), seq(2, arrival=9.5)
    s.add(old)
    s.add(new)
    with pytest.raises(QueueFull):
        s.add(seq(2))
    plan = s.plan(now=10.0)
    assert plan.expired == [old] and plan.admit == [new]


def test_a_prefix_cache_hit_is_charged_only_what_it_computes() -> None:
    s = sched(max_num_batched_tokens=50)
    s.running = [seq(5)]  # 1 decode token this step
    cached = seq(60)
    s.add(cached)
    assert s.plan(now=1.0).admit == []  # uncached, 60 prompt tokens exceed the 49 left
    s.cached_tokens = lambda x: len(x.prompt_ids) - 1 if x is cached else 0
    assert s.plan(now=1.0).admit == [cached]  # a hit computes only its last prompt token
