"""Guard rails for touching a real cluster: an explicit context allow-list, a chaos switch, and
clean-up that runs on normal exit, on failure, on Ctrl-C and on SIGTERM."""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from harness.backends.base import BackendError
from harness.errors import InputError

log = logging.getLogger("harness.backends.kube")

CHAOS_ACTIONS = ("zone_outage", "drain_zone", "delete_pod", "hang_pod", "rollout_restart")


class ContextNotAllowedError(InputError):
    """The kube context is not on the allow-list (profile `kube.allowed_contexts` /
    --allow-context)."""


class ChaosNotAllowedError(BackendError, InputError):
    """A fault was asked for on a context where the profile does not allow chaos."""

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None) -> None:
        InputError.__init__(self, message, field=field, fix=fix)


def check_context(context: str, allowed_contexts: list[str]) -> None:
    if not context:
        raise ContextNotAllowedError(
            "no kube context given",
            field="--context",
            fix="pass --context CTX (a context of your kubeconfig, or 'in-cluster')",
        )
    if context not in allowed_contexts:
        allowed = ", ".join(allowed_contexts) or "none"
        raise ContextNotAllowedError(
            f"refusing kube context {context!r}: it is not explicitly allowed (allowed: {allowed})",
            field="kube.allowed_contexts",
            fix=(
                f"add {context!r} to the profile's kube.allowed_contexts "
                f"or pass --allow-context {context}"
            ),
        )


def check_chaos(action: str, context: str, chaos_allowed: bool) -> None:
    if not chaos_allowed:
        raise ChaosNotAllowedError(
            f"refusing {action} on kube context {context!r}: chaos is not allowed there",
            field="kube.chaos_allowed",
            fix="set kube.chaos_allowed: true in the profile for a cluster you may disrupt",
        )


class CleanupRegistry:
    """Runs registered clean-ups once: at interpreter exit and on SIGINT/SIGTERM.

    Signal handlers are installed only from the main thread, chain to the previous handler
    (so Ctrl-C still raises KeyboardInterrupt) and are put back when nothing is registered.
    """

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

    def _install(self) -> None:
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):  # not the main interpreter / unsupported
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def _uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, prev in list(self._previous.items()):
            try:
                if signal.getsignal(sig) == self._on_signal:
                    signal.signal(sig, prev)
            except (ValueError, OSError):
                pass
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning(
            "signal %d: restoring nodes and deleting Gauntlet namespaces before exit", signum
        )
        previous = self._previous.get(signum)
        self.run_all()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)


CLEANUP = CleanupRegistry()
