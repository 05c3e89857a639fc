"""The kubelet prober: one probe attempt (httpGet, tcpSocket, exec) and the per-probe worker loop.

The worker follows pkg/kubelet/prober/worker.go: one per container and probe type for the
pod's life, restarting its counts on every new container, `initialDelaySeconds` in truncated
seconds from container start, liveness/readiness gated on `started`; a result over its
threshold goes to the pod worker, which may put the prober on hold (a kill was issued).
"""

from __future__ import annotations

import http.client
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.backends.local.cluster.events import EventRecorder
from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.podspec.pod_template import ProbeSpec

#: (probe, success, container id) -> True when the worker must go on hold
ResultFn = Callable[[ProbeSpec, bool, int], bool]


@dataclass
class ProbeRecord:
    """One probe attempt (Gauntlet's timeline; Kubernetes keeps only counters and events)."""

    time: float
    pod: str
    container: str
    probe: str
    restart: int
    success: bool
    message: str = ""


@dataclass
class ProbeOutcome:
    success: bool
    message: str = ""


def run_probe(
    probe: ProbeSpec,
    pod_ip: str,
    exec_argv: Callable[[list[str]], list[str]],
    env: dict[str, str] | None = None,
) -> ProbeOutcome:
    try:
        if probe.handler == "httpGet":
            return _http(probe, probe.host or pod_ip)
        if probe.handler == "tcpSocket":
            with socket.create_connection(
                (probe.host or pod_ip, probe.port or 0), timeout=probe.timeout_s
            ):
                return ProbeOutcome(True)
        if probe.handler == "exec":
            out = subprocess.run(
                exec_argv(probe.command), capture_output=True, timeout=probe.timeout_s, env=env
            )
            if out.returncode == 0:
                return ProbeOutcome(True)
            return ProbeOutcome(
                False,
                f"command exited {out.returncode}: {out.stdout[-200:].decode(errors='replace')}",
            )
        return ProbeOutcome(False, f"{probe.handler} probes are not supported by the local backend")
    except subprocess.TimeoutExpired:
        return ProbeOutcome(False, f"command timed out after {probe.timeout_s:g}s")
    except TimeoutError:
        return ProbeOutcome(False, f"context deadline exceeded (timeout {probe.timeout_s:g}s)")
    except OSError as err:
        return ProbeOutcome(False, f"dial tcp {pod_ip}:{probe.port}: {err.strerror or err}")


def _http(probe: ProbeSpec, host: str) -> ProbeOutcome:
    cls = (
        http.client.HTTPSConnection
        if probe.scheme.upper() == "HTTPS"
        else http.client.HTTPConnection
    )
    conn = cls(host, probe.port, timeout=probe.timeout_s)
    try:
        headers = {
            "User-Agent": "kube-probe/1.33",
            "Accept": "*/*",
            "Connection": "close",
            **probe.headers,
        }
        conn.request("GET", probe.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(10 * 1024)
        if 200 <= resp.status < 400:
            return ProbeOutcome(True)
        return ProbeOutcome(
            False,
            (
                f"HTTP probe failed with statuscode: {resp.status} "
                f"{body[:120].decode(errors='replace')}"
            ).strip(),
        )
    except TimeoutError:
        return ProbeOutcome(
            False,
            f'Get "http://{host}:{probe.port}{probe.path}": context deadline exceeded '
            f"(Client.Timeout exceeded while awaiting headers)",
        )
    finally:
        conn.close()


class ProbeWorker:
    def __init__(
        self,
        pod: LocalPod,
        probe: ProbeSpec,
        lock: threading.RLock,
        stop: threading.Event,
        events: EventRecorder,
        probe_log: list[ProbeRecord],
        on_result: ResultFn,
        jitter: bool,
    ) -> None:
        self.pod = pod
        self.probe = probe
        self.lock = lock
        self.stop = stop  # pod deletion
        self.events = events
        self.probe_log = probe_log
        self.on_result = on_result
        self.jitter = jitter
        self.trigger = threading.Event()  # a manual run (readiness right after startup) or the stop

    def start(self) -> None:
        threading.Thread(
            target=self.run, daemon=True, name=f"probe-{self.probe.kind}-{self.pod.name}"
        ).start()

    def run(self) -> None:
        p, probe = self.pod, self.probe
        if self.jitter and self.stop.wait(random.random() * probe.period_s):
            return
        seen_id = -1
        on_hold = False
        result_run = 0
        last: bool | None = None
        while not self.stop.is_set():
            with self.lock:
                cid, handle, started_at, started = p.container_id, p.handle, p.started_at, p.started
            if cid != seen_id:
                seen_id, on_hold, result_run, last = cid, False, 0, None
            skip = (
                on_hold
                or handle is None
                or started_at is None
                or int(time.time() - started_at) < probe.initial_delay_s
                or (probe.kind == "startup" and started)
                or (probe.kind != "startup" and not started)
            )
            if not skip and handle is not None:
                outcome = run_probe(probe, p.pod_ip or "127.0.0.1", handle.exec_argv, p.env or None)
                with self.lock:
                    if p.container_id != cid:  # container changed while probing: discard
                        continue
                self.probe_log.append(
                    ProbeRecord(
                        time.time(),
                        p.name,
                        p.template.main.name,
                        probe.kind,
                        p.restart_count,
                        outcome.success,
                        outcome.message,
                    )
                )
                if not outcome.success:
                    self.events.record(
                        "Pod",
                        p.name,
                        "Unhealthy",
                        f"{probe.kind.capitalize()} probe failed: {outcome.message}",
                        type_="Warning",
                    )
                result_run = result_run + 1 if outcome.success == last else 1
                last = outcome.success
                threshold = probe.success_threshold if outcome.success else probe.failure_threshold
                if result_run >= threshold:
                    on_hold = self.on_result(probe, outcome.success, cid) or on_hold
                    if on_hold:
                        result_run = 0
            self.trigger.wait(probe.period_s)
            self.trigger.clear()
