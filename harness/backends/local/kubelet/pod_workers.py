"""The kubelet's pod workers (pkg/kubelet/pod_workers.go): one PodWorker per bound pod.

Pod deletion lives here because it needs both sides: the API object is marked terminating
(out of the endpoints, no longer counted) at once, while its worker kills the container
with the grace period in the background.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.kubelet import volumes
from harness.backends.local.kubelet.pod_worker import PodWorker, StartFn


class PodWorkers:
    def __init__(
        self,
        state: ClusterState,
        start: StartFn,
        run: str,
        *,
        jitter: bool,
        backoff_scale: float,
        on_change: Callable[[], None],
    ) -> None:
        self.state = state
        self._start = start
        self.run = run
        self.jitter = jitter
        self.backoff_scale = backoff_scale
        self.on_change = on_change  # a pod changed: endpoints and controllers react
        self.workers: dict[str, PodWorker] = {}

    def start(self, pod: LocalPod) -> None:
        """Run a pod just bound to a node (not once teardown has begun)."""
        s = self.state
        w = PodWorker(
            pod,
            self._start,
            s.events,
            s.lock,
            s.probe_log,
            jitter=self.jitter,
            backoff_scale=self.backoff_scale,
            on_change=self.on_change,
        )
        with s.lock:
            if s.closed:
                return
            self.workers[pod.name] = w
        w.start()

    def delete(self, name: str, grace_s: float | None, reason: str = "") -> None:
        s = self.state
        with s.lock:
            p = s.pods.get(name)
            w = self.workers.get(name)
            if p is None or (w is None and p.node_name is not None):
                return
            if p.deletion is None:
                p.deletion = time.time()
            if w is None:  # never bound: nothing runs, the pod is gone at once
                p.finished = True
                if reason:
                    p.reason = reason
        self.on_change()
        if w is not None:
            threading.Thread(target=w.delete, args=(grace_s, reason), daemon=True).start()

    def kill_now(self, name: str) -> None:
        """SIGKILL at once: the pod's node is gone."""
        w = self.workers.get(name)
        if w is not None:
            w.kill_now()

    def freeze(self, name: str) -> list[int] | None:
        """SIGSTOP the running container (it hangs without exiting); its pids, None when none
        runs."""
        with self.state.lock:
            p = self.state.pods.get(name)
            handle = p.handle if p else None
        if p is None or handle is None:
            return None
        pids = handle.pids()
        handle.signal(signal.SIGSTOP)
        p.hung = True
        return pids

    def collect_finished(self) -> None:
        """Fully terminated pods leave the API (under the lock); their emptyDirs go with them."""
        s = self.state
        with s.lock:
            for name, p in list(s.pods.items()):
                if p.finished:
                    s.gone.append(s.pods.pop(name))
                    volumes.remove_pod(self.run, name)
                    self.workers.pop(name, None)

    def kill_all(self) -> list[PodWorker]:
        """Teardown: SIGKILL every pod; returns the workers, for the caller to join."""
        workers = list(self.workers.values())
        for w in workers:
            w.kill_now()
        return workers
