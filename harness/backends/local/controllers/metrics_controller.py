"""The resource sampler (cAdvisor's role): CPU, working set, OOM kills and CFS throttling per pod.

With pod cgroups (process runtime, limits enforced) the pod's cgroup is read while the pod
exists, also between container restarts, as cAdvisor does: its OOM counter is the evidence of a
crash-looping, OOM-killed container. Without them, the process tree's CPU time and RSS.
"""

from __future__ import annotations

import contextlib
import time

import psutil

from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.kubelet import cgroups
from harness.backends.observe import ResourceSample


def proc_tree_usage(pids: list[int]) -> tuple[float | None, int | None]:
    """(CPU seconds, RSS bytes) summed over `pids`; (None, None) without any."""
    cpu = 0.0
    rss = 0
    for pid in pids:
        try:
            pr = psutil.Process(pid)
            t = pr.cpu_times()
            cpu += t.user + t.system
            rss += pr.memory_info().rss
        except psutil.Error:
            continue
    return (cpu, rss) if pids else (None, None)


class MetricsController:
    def __init__(
        self,
        state: ClusterState,
        run: str,
        *,
        period_s: float,
        pod_cgroups: bool,
        limits_enforced: bool,
        limits_reason: str,
    ) -> None:
        self.state = state
        self.run_name = run
        self.period_s = period_s
        self.pod_cgroups = pod_cgroups
        self.limits_enforced = limits_enforced
        self.limits_reason = limits_reason
        self._cpu_prev: dict[
            str, tuple[float, float]
        ] = {}  # pod -> (time, CPU seconds) of its last reading
        self._mem_warned: set[str] = set()

    def run(self) -> None:
        while not self.state.stop.wait(self.period_s):
            with contextlib.suppress(
                Exception
            ):  # a pod vanishing mid-read must not end the sampler
                self.sample(time.time())

    def sample(self, now: float) -> None:
        s = self.state
        with s.lock:
            live = [
                (p, p.handle)
                for p in s.pods.values()
                if p.handle is not None
                or (self.pod_cgroups and p.start_time is not None and not p.finished)
            ]
        out: list[ResourceSample] = []
        for p, handle in live:
            c = p.template.main  # its own template: during a rollout old and new pods may differ
            cg = handle.cgroup if handle is not None else cgroups.PodCgroup(self.run_name, p.name)
            cpu_s: float | None = None
            mem: int | None = None
            ooms: int | None = None
            throttling: tuple[int, int, int] | None = None
            if cg is not None:
                if not cg.memory.is_dir():
                    continue  # not created yet, or already removed
                ns = cg.cpu_usage_ns()
                cpu_s = ns / 1e9 if ns is not None else None
                mem = cg.working_set()
                ooms = cg.oom_kills()
                throttling = cg.cpu_throttling() if c.cpu_limit else None
            elif handle is not None:
                cpu_s, mem = proc_tree_usage(handle.pids())
            cores = None
            prev = self._cpu_prev.get(p.name)
            if cpu_s is not None:
                if prev is not None and now > prev[0] and cpu_s >= prev[1]:
                    cores = (cpu_s - prev[1]) / (now - prev[0])
                self._cpu_prev[p.name] = (now, cpu_s)
            if (
                not self.limits_enforced
                and c.memory_limit
                and mem
                and mem > c.memory_limit
                and p.name not in self._mem_warned
            ):
                self._mem_warned.add(p.name)
                s.events.record(
                    "Pod",
                    p.name,
                    "MemoryLimitExceeded",
                    f"working set {mem} > limit {c.memory_limit} (limits monitored, not enforced: "
                    f"{self.limits_reason})",
                    type_="Warning",
                    source="gauntlet",
                )
            out.append(
                ResourceSample(
                    time=now,
                    pod=p.name,
                    cpu_cores=cores,
                    cpu_request_cores=c.cpu_request,
                    cpu_limit_cores=c.cpu_limit,
                    memory_bytes=mem,
                    memory_limit_bytes=c.memory_limit,
                    oom_kills=ooms,
                    cpu_usage_s=cpu_s,
                    cpu_periods=throttling[0] if throttling else None,
                    cpu_throttled_periods=throttling[1] if throttling else None,
                    cpu_throttled_s=throttling[2] / 1e9 if throttling else None,
                )
            )
        with s.lock:
            s.samples.extend(out)
