"""The kubelet for one pod: container start/restart with CrashLoopBackOff, init containers, kills.

Probe results arrive from the pod's ProbeWorkers (prober.py): readiness sets the Ready
condition, startup success starts liveness/readiness, and a liveness/startup failure over the
threshold kills the container with the grace period (preStop first; at least 2 s between
SIGTERM and SIGKILL after it).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from harness.backends.local.cluster.events import EventRecorder
from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.kubelet.backoff import CrashLoopBackOff
from harness.backends.local.kubelet.prober import ProbeRecord, ProbeWorker
from harness.backends.local.kubelet.runtime import ContainerHandle, ExitInfo
from harness.backends.local.podspec.pod_template import ContainerSpec, ProbeSpec
from harness.backends.observe import (
    ContainerState,
    ContainerStatus,
    StateRunning,
    StateTerminated,
    StateWaiting,
)

MIN_GRACE_AFTER_PRESTOP_S = 2.0
StartFn = Callable[[LocalPod, ContainerSpec], ContainerHandle]


class PodWorker:
    """Runs one pod to completion (deletion). All pod mutations happen under `lock`."""

    def __init__(
        self,
        pod: LocalPod,
        start: StartFn,
        events: EventRecorder,
        lock: threading.RLock,
        probe_log: list[ProbeRecord],
        *,
        jitter: bool = True,
        backoff_scale: float = 1.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.pod = pod
        self.start_fn = start
        self.events = events
        self.lock = lock
        self.jitter = jitter
        self.backoff = CrashLoopBackOff(backoff_scale)
        self.on_change = on_change
        self.probe_log = probe_log
        self.stop = threading.Event()  # pod deletion requested
        self.results: dict[str, bool | None] = {}
        self.probers: dict[str, ProbeWorker] = {}
        self.thread = threading.Thread(target=self._run, name=f"kubelet-{pod.name}", daemon=True)
        self._kill_lock = threading.Lock()
        self._running: ContainerSpec = pod.template.main  # the container p.handle runs

    def start(self) -> None:
        self.thread.start()

    # main loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        p = self.pod
        c = p.template.main
        with self.lock:
            p.start_time = time.time()
            p.set_condition("PodReadyToStartContainers", "True")
            p.set_condition(
                "ContainersReady",
                "False",
                "ContainersNotReady",
                f"containers with unready status: [{c.name}]",
            )
            p.set_condition(
                "Ready",
                "False",
                "ContainersNotReady",
                f"containers with unready status: [{c.name}]",
            )
        if not self._run_init_containers():
            self._finish()
            return
        for kind, probe in c.probes.items():
            self.probers[kind] = ProbeWorker(
                p,
                probe,
                self.lock,
                self.stop,
                self.events,
                self.probe_log,
                self._apply_result,
                self.jitter,
            )
            self.probers[kind].start()
        delay = 0.0
        while not self.stop.is_set():
            if delay > 0 and not self._back_off(c, delay, lambda st: setattr(p, "state", st)):
                break
            try:
                self._start_container(c)
            except Exception as err:  # the runtime could not start it: like a CreateContainerError
                self.events.record("Pod", p.name, "Failed", f"Error: {err}", type_="Warning")
                info = ExitInfo(128, None, False, time.time())
                with self.lock:
                    p.last_state = ContainerState(
                        terminated=StateTerminated(
                            exitCode=128,
                            reason="StartError",
                            finishedAt=info.finished_at,
                            message=str(err),
                        )
                    )
                delay = self.backoff.next_delay(info.finished_at, info.finished_at)
                continue
            info = self._wait_exit()
            self._record_exit(info)
            if self.stop.is_set():
                break
            with self.lock:
                p.restart_count += 1
            delay = self.backoff.next_delay(info.finished_at, p.started_at)
        self._finish()

    def _back_off(
        self, c: ContainerSpec, delay: float, set_state: Callable[[ContainerState], None]
    ) -> bool:
        """The CrashLoopBackOff wait before restarting `c` (waiting state, BackOff event); False
        when the pod was deleted meanwhile."""
        p = self.pod
        with self.lock:
            set_state(
                ContainerState(
                    waiting=StateWaiting(
                        reason="CrashLoopBackOff",
                        message=(
                            f"back-off {delay:g}s restarting failed container={c.name} pod={p.name}"
                        ),
                    )
                )
            )
        self.events.record(
            "Pod",
            p.name,
            "BackOff",
            f"Back-off restarting failed container {c.name} in pod {p.name}",
            type_="Warning",
        )
        self.on_change()
        return not self.stop.wait(delay)

    def _finish(self) -> None:
        p = self.pod
        with self.lock:
            p.finished = True
            p.phase = (
                "Succeeded"
                if p.phase == "Succeeded"
                else ("Failed" if p.reason == "Evicted" else p.phase)
            )
        self.on_change()

    # init containers -----------------------------------------------------------------------------
    def _run_init_containers(self) -> bool:
        """Each init container in order, to completion (exit 0), before the containers start. A
        failed one is restarted with its own CrashLoopBackOff (pod restartPolicy Always).
        False when the pod was deleted first."""
        p = self.pod
        inits = p.template.init_containers
        with self.lock:
            p.init_statuses = [
                ContainerStatus(
                    name=ic.name,
                    image=ic.image,
                    state=ContainerState(waiting=StateWaiting(reason="PodInitializing")),
                )
                for ic in inits
            ]
            if inits:
                p.state = ContainerState(waiting=StateWaiting(reason="PodInitializing"))
        for i, ic in enumerate(inits):
            pending = ", ".join(x.name for x in inits[i:])
            with self.lock:
                p.set_condition(
                    "Initialized",
                    "False",
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{pending}]",
                )
            if not self._run_to_completion(ic, p.init_statuses[i]):
                return False
        with self.lock:
            p.set_condition("Initialized", "True")
            p.state = ContainerState(waiting=StateWaiting(reason="ContainerCreating"))
        self.on_change()
        return not self.stop.is_set()

    def _run_to_completion(self, c: ContainerSpec, status: ContainerStatus) -> bool:
        p = self.pod
        backoff = CrashLoopBackOff(self.backoff.scale)
        delay = 0.0
        while not self.stop.is_set():
            if delay > 0 and not self._back_off(c, delay, lambda st: setattr(status, "state", st)):
                return False
            try:
                handle = self.start_fn(p, c)
            except Exception as err:  # the runtime could not start it: like a CreateContainerError
                self.events.record("Pod", p.name, "Failed", f"Error: {err}", type_="Warning")
                now = time.time()
                with self.lock:
                    status.lastState = ContainerState(
                        terminated=StateTerminated(
                            exitCode=128, reason="StartError", finishedAt=now, message=str(err)
                        )
                    )
                delay = backoff.next_delay(now, now)
                continue
            started = time.time()
            with self.lock:
                if self.stop.is_set():
                    handle.signal(signal.SIGKILL)
                p.handle, self._running = handle, c
                p.container_id += 1
                status.state = ContainerState(running=StateRunning(startedAt=started))
            self._started_events(c)
            info = self._wait_exit()
            term = self._terminated(c, info, started)
            with self.lock:
                p.handle, self._running = None, p.template.main
                status.state = ContainerState(terminated=term)
                status.ready = info.exit_code == 0
                if info.exit_code != 0:
                    status.lastState = ContainerState(terminated=term)
            if info.exit_code == 0:
                return True
            if self.stop.is_set():
                return False
            with self.lock:
                status.restartCount += 1
            delay = backoff.next_delay(info.finished_at, started)
        return False

    def _start_container(self, c: ContainerSpec) -> None:
        p = self.pod
        handle = self.start_fn(p, c)
        now = time.time()
        with self.lock:
            if self.stop.is_set():  # deleted while starting: do not leave it running
                handle.signal(signal.SIGKILL)
            p.handle = handle
            p.container_id += 1
            p.started_at = now
            p.hung = False
            p.state = ContainerState(running=StateRunning(startedAt=now))
            p.phase = "Running"
            p.started = "startup" not in c.probes
            p.ready = False
            # new container ID: results back to their initial values
            self.results = {"startup": None, "liveness": True, "readiness": False}
        self._started_events(c)
        self._update_ready()
        if p.started and "readiness" in self.probers:
            self.probers["readiness"].trigger.set()

    def _wait_exit(self) -> ExitInfo:
        handle = self.pod.handle
        assert handle is not None
        while True:
            info = handle.wait(0.2)
            if info is not None:
                return info

    def _terminated(
        self, c: ContainerSpec, info: ExitInfo, started_at: float | None
    ) -> StateTerminated:
        """A container's end as the kubelet reports it (OOMKilled / Completed / Error), with the
        OOMKilling event when its cgroup counted a kill."""
        reason = (
            "OOMKilled" if info.oom_killed else ("Completed" if info.exit_code == 0 else "Error")
        )
        if info.oom_kills > 0:
            self.events.record(
                "Pod",
                self.pod.name,
                "OOMKilling",
                f"Memory cgroup out of memory: Killed process in container {c.name} "
                f"(oom_kill +{info.oom_kills}, limit {c.memory_limit} bytes)",
                type_="Warning",
            )
        return StateTerminated(
            exitCode=info.exit_code,
            reason=reason,
            startedAt=started_at,
            finishedAt=info.finished_at,
            signal=info.signal,
            message=f"cgroup oom_kill +{info.oom_kills}" if info.oom_kills else "",
        )

    def _started_events(self, c: ContainerSpec) -> None:
        self.events.record("Pod", self.pod.name, "Created", f"Created container: {c.name}")
        self.events.record("Pod", self.pod.name, "Started", f"Started container {c.name}")

    def _record_exit(self, info: ExitInfo) -> None:
        p = self.pod
        term = self._terminated(p.template.main, info, p.started_at)
        with self.lock:
            p.last_state = ContainerState(terminated=term)
            p.state = (
                ContainerState(terminated=term)
                if self.stop.is_set()
                else ContainerState(waiting=StateWaiting(reason="ContainerCreating"))
            )
            p.started = False
            p.ready = False
            p.handle = None
        self._update_ready()

    # readiness -> conditions ---------------------------------------------------------------------
    def _update_ready(self) -> None:
        p = self.pod
        c = p.template.main
        with self.lock:
            running = p.state.running is not None
            ready = (
                running
                and p.started
                and ("readiness" not in c.probes or bool(self.results.get("readiness")))
            )
            changed = ready != p.ready
            p.ready = ready
            if ready:
                p.set_condition("ContainersReady", "True")
                p.set_condition("Ready", "True")
            else:
                msg = f"containers with unready status: [{c.name}]"
                p.set_condition("ContainersReady", "False", "ContainersNotReady", msg)
                p.set_condition("Ready", "False", "ContainersNotReady", msg)
        if changed:
            self.on_change()

    # probe results -------------------------------------------------------------------------------
    def _apply_result(self, probe: ProbeSpec, success: bool, cid: int) -> bool:
        """Set the worker's result; returns True when the worker must go on hold (kill issued)."""
        p = self.pod
        with self.lock:
            if p.container_id != cid:
                return False
            prev = self.results.get(probe.kind)
            self.results[probe.kind] = success
        if probe.kind == "readiness":
            if prev != success:
                self._update_ready()
            return False
        if probe.kind == "startup" and success:
            with self.lock:
                p.started = True
            self._update_ready()
            if "readiness" in self.probers:
                self.probers[
                    "readiness"
                ].trigger.set()  # manual trigger: readiness right after startup
            return False
        if success:
            return False
        grace = probe.termination_grace_period_s
        if grace is None:
            grace = p.template.termination_grace_period_s
        msg = f"Container {p.template.main.name} failed {probe.kind} probe, will be restarted"
        threading.Thread(target=self.kill_container, args=(msg, grace, cid), daemon=True).start()
        return True

    # killing ----------------------------------------------------------------------------------
    def kill_container(self, message: str, grace_s: float, cid: int | None = None) -> None:
        """Killing event, preStop hook, SIGTERM, SIGKILL after the (remaining) grace period."""
        p = self.pod
        with self._kill_lock:
            with self.lock:
                handle = p.handle
                if handle is None or (cid is not None and p.container_id != cid):
                    return
            self.events.record(
                "Pod",
                p.name,
                "Killing",
                message if message else f"Stopping container {p.template.main.name}",
            )
            deadline = time.monotonic() + grace_s
            if p.hung:
                handle.signal(signal.SIGCONT)  # a frozen process must run to see SIGTERM/SIGKILL
            hook = self._running.pre_stop
            self._pre_stop(handle, grace_s, hook)
            remaining = max(deadline - time.monotonic(), MIN_GRACE_AFTER_PRESTOP_S if hook else 0)
            handle.signal(signal.SIGTERM)
            if handle.wait(remaining) is None:
                handle.signal(signal.SIGKILL)
                handle.wait(10.0)

    def _pre_stop(
        self, handle: ContainerHandle, grace_s: float, hook: dict[str, Any] | None
    ) -> None:
        if not hook:
            return
        try:
            if "exec" in hook:
                subprocess.run(
                    handle.exec_argv([str(x) for x in hook["exec"].get("command", [])]),
                    timeout=grace_s,
                    capture_output=True,
                    env=self.pod.env or None,
                )
            elif "httpGet" in hook:
                h = hook["httpGet"]
                port = h.get("port")
                port = (
                    self.pod.template.main.ports.get(str(port), port)
                    if isinstance(port, str)
                    else port
                )
                url = f"http://{h.get('host') or self.pod.pod_ip}:{port}{h.get('path', '/')}"
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=grace_s):
                    pass
            elif "sleep" in hook:
                time.sleep(min(float(hook["sleep"].get("seconds", 0)), grace_s))
        except (OSError, subprocess.SubprocessError) as err:
            self.events.record(
                "Pod",
                self.pod.name,
                "FailedPreStopHook",
                f"PreStopHook failed: {err}",
                type_="Warning",
            )

    def delete(self, grace_s: float | None = None, reason: str = "") -> None:
        """Pod deletion: terminating (out of endpoints at once), container killed with the grace
        period."""
        p = self.pod
        with self.lock:
            if p.deletion is None:
                p.deletion = time.time()
            if reason:
                p.reason = reason
        self.on_change()
        self.stop.set()
        for w in self.probers.values():
            w.trigger.set()
        grace = p.template.termination_grace_period_s if grace_s is None else grace_s
        self.kill_container("", grace)

    def kill_now(self) -> None:
        """SIGKILL the container and stop the pod (zone outage, teardown)."""
        p = self.pod
        with self.lock:
            if p.deletion is None:
                p.deletion = time.time()
            handle = p.handle
        self.stop.set()
        for w in self.probers.values():
            w.trigger.set()
        if handle is not None:
            handle.signal(signal.SIGCONT)
            handle.signal(signal.SIGKILL)
        self.on_change()
