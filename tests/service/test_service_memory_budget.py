"""MemoryBudget: what it admits against the budget, without a server (RSS is stubbed)."""

from __future__ import annotations

import pytest

from reference_service.admission import MemoryBudget, Rejection

MIB = 1 << 20


class StubbedBudget(MemoryBudget):
    """A 640 MiB budget whose live RSS the test sets (`rss_now`)."""

    def __init__(self, baseline_mib: int) -> None:
        super().__init__(640 * MIB)
        self.rss_now = baseline_mib * MIB
        self.mark_baseline()

    def rss(self) -> int:
        return self.rss_now


def test_running_requests_are_not_counted_twice() -> None:
    """16 requests of 9 MiB fit 640 MiB over a 420 MiB baseline, even once they have allocated
    (RSS grew by their use): reservations and RSS are not added together."""
    b = StubbedBudget(420)
    for _ in range(16):
        b.reserve(9 * MIB)
        b.rss_now += 5 * MIB
    assert b.reserved == 16 * 9 * MIB


def test_the_estimates_bound_admission() -> None:
    b = StubbedBudget(420)
    admitted = 0
    with pytest.raises(Rejection) as err:
        while True:
            b.reserve(9 * MIB)
            admitted += 1
    assert admitted == (640 - 420) // 9
    assert (err.value.status, err.value.reason) == (429, "memory")


def test_live_rss_above_the_estimates_still_refuses() -> None:
    b = StubbedBudget(420)
    b.rss_now = 636 * MIB  # e.g. a memory-pressure fault
    with pytest.raises(Rejection):
        b.reserve(9 * MIB)
    b.rss_now = 420 * MIB
    b.reserve(9 * MIB)


def test_a_request_larger_than_the_idle_free_budget_is_413() -> None:
    b = StubbedBudget(420)
    with pytest.raises(Rejection) as err:
        b.reserve(300 * MIB)
    assert (err.value.status, err.value.reason) == (413, "too_large")
