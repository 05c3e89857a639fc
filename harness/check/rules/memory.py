"""Memory rules: the limit keeps the profile's headroom over the peak (measured, else requests)."""

from __future__ import annotations

import math

from harness.check.findings import Finding
from harness.check.rules._base import finding
from harness.check.targets import Targets
from harness.check.workload import Workload, resource_bytes
from harness.quantity import format_bytes

MI = 2**20


def _mi(n: float) -> str:
    return f"{math.ceil(n / MI)}Mi"


def memory(w: Workload, t: Targets) -> list[Finding]:
    out: list[Finding] = []
    headroom = t.profile.memory.headroom
    for i in w.serving_indexes():
        c = w.containers[i]
        limit = resource_bytes(c, "limits")
        request = resource_bytes(c, "requests")
        field = w.container_field(i, "resources")
        if limit is None:
            out.append(
                finding(
                    w,
                    "memory-limit-missing",
                    "warning",
                    f"{field}.limits.memory",
                    f"container {c.get('name')!r} has no memory limit: a leak or an oversized "
                    "batch takes the node's memory until the kubelet evicts pods "
                    "(not just this one)",
                    measured="no limits.memory",
                    required=f"a memory limit with {headroom:.0%} headroom over the peak",
                    fix="set resources.limits.memory",
                )
            )
            continue
        if request is not None and request > limit:
            out.append(
                finding(
                    w,
                    "memory-request-over-limit",
                    "error",
                    f"{field}.requests.memory",
                    "requests.memory is above limits.memory: the API server rejects the pod",
                    measured=f"request {format_bytes(request)} > limit {format_bytes(limit)}",
                    required="requests.memory <= limits.memory",
                    fix="lower the request or raise the limit",
                )
            )
            continue
        if t.peak_memory_bytes is not None:
            peak, basis = t.peak_memory_bytes.value, t.peak_memory_bytes.basis
            what = "measured peak"
        elif request is not None:
            peak, basis, what = float(request), "declared (requests.memory)", "declared need"
        else:
            out.append(
                finding(
                    w,
                    "memory-headroom",
                    "info",
                    f"{field}.limits.memory",
                    "peak memory unknown and no memory request: headroom not checked",
                    fix="pass --measured report.json or set requests.memory",
                )
            )
            continue
        usable = (1 - headroom) * limit
        need_limit = peak / (1 - headroom)
        if peak >= limit:
            msg = (
                f"{what} {format_bytes(peak)} reaches the limit {format_bytes(limit)}: "
                "the kernel OOM-kills the container at peak load (OOMKilled, exit 137)"
            )
        elif peak > usable:
            msg = (
                f"{what} {format_bytes(peak)} leaves {1 - peak / limit:.0%} headroom under "
                f"the limit; the profile needs {headroom:.0%}"
            )
        else:
            if t.peak_memory_bytes is not None and request is not None and peak > request:
                out.append(
                    finding(
                        w,
                        "memory-request-below-peak",
                        "warning",
                        f"{field}.requests.memory",
                        "measured peak is above requests.memory: the pod is an early candidate "
                        "for node-pressure eviction and the scheduler overcommits the node",
                        measured=f"peak {format_bytes(peak)} > request {format_bytes(request)}",
                        required="requests.memory >= peak",
                        fix=f"set requests.memory: {_mi(peak)}",
                        basis=basis,
                    )
                )
            continue
        out.append(
            finding(
                w,
                "memory-headroom",
                "error",
                f"{field}.limits.memory",
                msg,
                measured=f"{what} {format_bytes(peak)}, limit {format_bytes(limit)}",
                required=f"limit >= peak / (1 - {headroom:g}) = {format_bytes(need_limit)}",
                fix=f"set resources.limits.memory: {_mi(need_limit)} (and requests.memory >= "
                f"{_mi(peak)}), or cut the peak (smaller max batch / prompt limits)",
                basis=basis,
            )
        )
    return out


RULES = [memory]
