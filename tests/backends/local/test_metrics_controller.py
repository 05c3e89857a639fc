"""The resource sampler without cgroups.

The process tree's CPU rate and RSS, and the over-limit warning.
"""

from __future__ import annotations

import os
import time

from cluster_fakes import add_pod, cluster
from standin_specs import deployment

from harness.backends.local.controllers.metrics_controller import MetricsController
from harness.backends.local.kubelet.runtime import ContainerHandle


class ThisProcess(ContainerHandle):
    def __init__(self) -> None:
        self.pid = os.getpid()


def test_cpu_is_a_rate_between_readings_and_an_over_limit_working_set_warns_once() -> None:
    s = cluster(1, dep=deployment(memory_limit="1Mi"))
    add_pod(s, "a").handle = ThisProcess()
    add_pod(s, "not-started")  # no container, no pod cgroups: nothing to read
    ctl = MetricsController(
        s, "run", period_s=1.0, pod_cgroups=False, limits_enforced=False, limits_reason="not root"
    )
    t0 = time.time()
    ctl.sample(t0)
    end = time.process_time() + 0.05
    while time.process_time() < end:  # burn some CPU between the readings
        pass
    ctl.sample(t0 + 1.0)
    first, second = s.samples
    assert first.pod == second.pod == "a"
    assert first.cpu_cores is None and second.cpu_cores is not None and second.cpu_cores > 0
    assert (
        second.memory_bytes and second.memory_bytes > 2**20 and second.memory_limit_bytes == 2**20
    )
    assert second.oom_kills is None and second.cpu_periods is None  # only a pod cgroup has those
    (warned,) = [e for e in s.events.list() if e.reason == "MemoryLimitExceeded"]
    assert warned.count == 1 and "not root" in warned.message
