"""The kubelet's CrashLoopBackOff schedule, in one place (or the shared probe model when present)."""

from __future__ import annotations

INITIAL_S = 10.0
MAX_S = 300.0
RESET_AFTER_S = 2 * MAX_S  # an entry resets after 10 min without a crash


def delay_for(restarts_in_window: int) -> float:
    """Wait before restart number n+1 (n = back-offs already taken): 0, 10, 20, 40, ... <= 300 s."""
    try:
        from harness.models.probes import crashloop_backoff  # type: ignore[import-not-found]

        return float(crashloop_backoff(restarts_in_window + 1))  # the model counts from 1
    except (ImportError, AttributeError, TypeError):
        pass
    if restarts_in_window <= 0:
        return 0.0
    return min(MAX_S, INITIAL_S * 2 ** (restarts_in_window - 1))


class CrashLoopBackOff:
    """Per-container back-off entry, measured from the exited container's finishedAt."""

    def __init__(self, scale: float = 1.0) -> None:
        self.n = 0
        self.last_finished: float | None = None
        self.scale = scale  # tests may shrink the schedule; 1.0 is the kubelet's

    def next_delay(self, finished_at: float, started_at: float | None) -> float:
        if self.last_finished is not None and started_at is not None and finished_at - started_at > RESET_AFTER_S:
            self.n = 0
        delay = delay_for(self.n) * self.scale
        self.n += 1
        self.last_finished = finished_at
        return delay
