"""Clean-up that a signal must not cut short.

`gauntlet certify` turns SIGINT/SIGTERM into KeyboardInterrupt. Raised in the middle of a
backend's teardown it would leave processes, cgroups or namespaces behind (the backend marks
itself closed as teardown begins, so nothing retries). Inside `shielded()` the signal handler
defers the interrupt instead; it is raised when the shielded block ends. A third signal still
forces its way through (see harness.run.engine.SignalGuard).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_depth = 0
_pending: list[str] = []


def deferring() -> bool:
    """True inside a shielded block (read by the signal handler)."""
    return _depth > 0


def defer(signal_name: str) -> None:
    _pending.append(signal_name)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Run the block to its end; a signal that arrived meanwhile is raised afterwards."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth == 0 and _pending:
        name = _pending[-1]
        _pending.clear()
        raise KeyboardInterrupt(name)
