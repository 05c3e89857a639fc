"""Ctrl-C after a backend's life: the teardown registry runs what is live, chains to the handler
it replaced, leaves an ignored signal ignored, and leaves the process's handlers as it found
them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from harness.backends.signal_cleanup import CleanupRegistry
from harness.run.engine import SignalGuard


@pytest.fixture(autouse=True)
def default_sigint() -> Iterator[None]:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_runs_the_teardowns_then_raises_and_the_handler_is_put_back() -> None:
    reg = CleanupRegistry()
    torn: list[str] = []
    reg.register(1, lambda: torn.append("backend"))
    assert reg.installed()
    with pytest.raises(KeyboardInterrupt):
        _ctrl_c()
    assert torn == ["backend"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_unregistering_the_last_teardown_restores_the_previous_handlers() -> None:
    reg = CleanupRegistry()
    reg.register(1, lambda: None)
    reg.register(2, lambda: None)
    reg.unregister(1)
    assert reg.installed()
    reg.unregister(2)
    assert not reg.installed()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_backend_made_inside_an_ended_certify_run_does_not_swallow_ctrl_c() -> None:
    """The run's guard records signals only once its report is being written; a teardown
    registered under it must not leave a chain to it after the run."""
    reg = CleanupRegistry()
    guard = SignalGuard(echo=lambda _msg: None)
    with guard:
        reg.register(1, lambda: None)  # chains to the guard
        guard.closing = True
    reg.register(2, lambda: None)  # a later backend, after the run
    with pytest.raises(KeyboardInterrupt):
        _ctrl_c()
    reg.run_all()


def test_a_guard_reached_after_it_ended_raises() -> None:
    guard = SignalGuard(echo=lambda _msg: None)
    with guard:
        guard.closing = True
    with pytest.raises(KeyboardInterrupt):
        guard._handle(signal.SIGINT, None)


def test_an_ignored_signal_stays_ignored_and_tears_nothing_down() -> None:
    """A process a shell started with `&` ignores SIGINT; Ctrl-C must not tear its backends down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reg = CleanupRegistry()
    torn: list[str] = []
    reg.register(1, lambda: torn.append("backend"))
    _ctrl_c()
    assert torn == []
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    reg.unregister(1)
