"""Event recorder with the API server's aggregation (same object+reason+message -> count++)."""

from __future__ import annotations

import threading
import time

from harness.backends.observe import Event, ObjectReference


class EventRecorder:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._events: list[Event] = []
        self._index: dict[tuple[str, str, str, str, str], Event] = {}
        self._lock = threading.Lock()

    def record(
        self,
        kind: str,
        name: str,
        reason: str,
        message: str = "",
        *,
        type_: str = "Normal",
        source: str = "kubelet",
    ) -> Event:
        now = time.time()
        key = (kind, name, reason, message, type_)
        with self._lock:
            ev = self._index.get(key)
            if ev is not None:
                ev.count += 1
                ev.lastTimestamp = now
                return ev
            ev = Event(
                type=type_,
                reason=reason,
                message=message,
                source=source,
                involvedObject=ObjectReference(kind=kind, name=name, namespace=self.namespace),
                firstTimestamp=now,
                lastTimestamp=now,
            )
            self._events.append(ev)
            self._index[key] = ev
            return ev

    def list(self, since: float | None = None) -> list[Event]:
        with self._lock:
            return [
                e.model_copy() for e in self._events if since is None or e.lastTimestamp >= since
            ]
