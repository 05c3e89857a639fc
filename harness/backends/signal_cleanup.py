"""One process-wide registry of backend teardowns, run at interpreter exit and on SIGINT/SIGTERM.

Both backends register here, so there is a single handler in the chain: installed from the main
thread when the first teardown is registered, chaining to the handler it replaced (Ctrl-C still
raises KeyboardInterrupt), and put back when the last one is gone. A handler captured once and
kept for the life of the process could chain to a handler whose owner had ended (a certify run's
guard, which after its report only records signals) and swallow every later Ctrl-C. A signal the
process ignores (a shell starts `cmd &` with SIGINT ignored) stays ignored: no teardown on it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("harness.backends")


class CleanupRegistry:
    """Runs registered clean-ups once each: at exit, or on SIGINT/SIGTERM before the previous
    handler."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[int, Callable[[], None]] = {}
        self._previous: dict[int, Any] = {}
        self._atexit = False

    def register(self, key: int, fn: Callable[[], None]) -> None:
        with self._lock:
            self._items[key] = fn
            if not self._atexit:
                atexit.register(self.run_all)
                self._atexit = True
            self._install()

    def unregister(self, key: int) -> None:
        with self._lock:
            self._items.pop(key, None)
            if not self._items:
                self._uninstall()

    def run_all(self) -> None:
        with self._lock:
            items = list(self._items.items())
        for key, fn in items:
            try:
                fn()
            except Exception as exc:  # keep going: every registered clean-up must get its turn
                log.error("clean-up failed: %s", exc)
            self.unregister(key)

    def installed(self) -> bool:
        return any(signal.getsignal(s) == self._on_signal for s in self._previous)

    def _install(self) -> None:
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):  # not the main interpreter / unsupported
                if signal.getsignal(sig) == signal.SIG_IGN:
                    continue  # e.g. started in the background by a shell (`cmd &`): stays ignored
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def _uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, prev in list(self._previous.items()):
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(sig) == self._on_signal:
                    signal.signal(sig, prev)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("signal %d: tearing down the live backends before exit", signum)
        previous = self._previous.get(signum)
        self.run_all()
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)


CLEANUP = CleanupRegistry()
