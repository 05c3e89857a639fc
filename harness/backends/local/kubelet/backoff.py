"""The kubelet's CrashLoopBackOff entry per container; the schedule is the shared probe model's."""

from __future__ import annotations

from harness.models.prober import BACKOFF_MAX_S, crashloop_backoff

RESET_AFTER_S = 2 * BACKOFF_MAX_S  # an entry resets after 10 min without a crash


def delay_for(restarts_in_window: int) -> float:
    """Wait before restart number n+1 (n = back-offs already taken): 0, 10, 20, 40, ... <= 300 s."""
    return crashloop_backoff(restarts_in_window + 1)  # the model counts restarts from 1


class CrashLoopBackOff:
    """Per-container back-off entry, measured from the exited container's finishedAt."""

    def __init__(self, scale: float = 1.0) -> None:
        self.n = 0
        self.last_finished: float | None = None
        self.scale = scale  # tests may shrink the schedule; 1.0 is the kubelet's

    def next_delay(self, finished_at: float, started_at: float | None) -> float:
        if (
            self.last_finished is not None
            and started_at is not None
            and finished_at - started_at > RESET_AFTER_S
        ):
            self.n = 0
        delay = delay_for(self.n) * self.scale
        self.n += 1
        self.last_finished = finished_at
        return delay
