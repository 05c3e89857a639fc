"""oom-headroom: peak memory under the profile's peak vs the limit, then shed (not OOM) past it.

The peak (largest batch: `peak.concurrency` closed-loop users, longest prompts) is driven at
one replica directly (its pod URL), because the question is per container: does one replica at
its worst stay below `(1 - headroom) x limits.memory`? Then `overload_factor` x the users: the
service must answer 429/503 (admission control), and no kernel OOM kill may happen (container
`OOMKilled`/137, `OOMKilling` event, cgroup oom_kill counter).

Both runs must be delivered (the generator's validity), and the overload must send at least
OVERLOAD_MIN_MULTIPLE x what admission can hold (running batch + waiting queue): a handful of
requests that all fit proves nothing about shedding. An overload the service absorbed without
refusing anything, and a zero OOM count where the backend does not enforce memory limits, are
inconclusive, not passes.
"""

from __future__ import annotations

import time
from typing import Any

from harness.backends.base import Backend
from harness.quantity import format_bytes
from harness.run import evidence
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.scenarios.cold_start import start_timeout_s
from harness.servers.command_line import flag_value
from harness.servers.kinds import VLLM
from harness.verdict import Check, Verdict

NAME = "oom-headroom"
#: every check this scenario can report, in the order it reports them (a pytest result each)
CHECKS = (
    "rollout_ready",
    "peak_load_valid",
    "peak_load_delivered",
    "overload_valid",
    "overload_volume",
    "memory_limit_set",
    "peak_memory_mib",
    "oom_kills",
    "overload_shed",
    "overload_unshed_failures",
)
VLLM_DEFAULT_MAX_NUM_SEQS = 128  # vLLM's SchedulerConfig default on CPU (0.32)
MIB = 1024 * 1024
OVERLOAD_MIN_MULTIPLE = 3
PEAK_MIN_SERVED = 0.99


def admission_capacity(ctx: ScenarioContext) -> tuple[int, str]:
    """Requests the service can hold before it must refuse: running batch + max queue (the
    reference service's GAUNTLET_ settings in the container env, else its defaults; vLLM's
    --max-num-queued-reqs, its cap on running + waiting, else --max-num-seqs: unbounded queue)."""
    if ctx.server is VLLM:
        container = common.main_container(ctx.bundle)
        queued = flag_value(container, "--max-num-queued-reqs").number
        if queued is not None:
            return int(queued), f"--max-num-queued-reqs={int(queued)} (running + waiting)"
        seqs = flag_value(container, "--max-num-seqs").number
        running = int(seqs) if seqs is not None else VLLM_DEFAULT_MAX_NUM_SEQS
        return running, f"--max-num-seqs={running} running, no --max-num-queued-reqs (unbounded)"
    held = 0
    parts = []
    for field in ("max_num_seqs", "max_queue"):
        value, set_here = common.service_setting(ctx.bundle, field)
        held += int(value)
        parts.append(f"GAUNTLET_{field.upper()}={int(value)}" + ("" if set_here else " (default)"))
    return held, " + ".join(parts)


def run(ctx: ScenarioContext) -> Verdict:
    prof = ctx.profile
    limit = common.memory_limit(ctx.bundle)
    allowed = None if limit is None else int(limit * (1 - prof.memory.headroom))
    checks: list[Check] = []
    measurements: dict[str, Any] = {
        "limit_bytes": limit,
        "allowed_bytes": allowed,
        "headroom": prof.memory.headroom,
    }
    with ctx.deploy(wait=False) as backend:
        t_start = time.time()
        failed = common.rollout_ready_check(
            backend, common.spec_replicas(ctx.bundle), start_timeout_s(ctx) * 2
        )
        if failed:
            oom = common.oom_evidence(backend, since=t_start)
            measurements["oom_evidence"] = oom
            checks += [failed, oom_check(backend, oom)]
        else:
            checks += _drive(ctx, backend, limit, allowed, measurements, t_start)
    return common.finish(
        ctx, NAME, checks, [], measurements, loads=(evidence.LOAD_RUN, evidence.OVERLOAD_RUN)
    )


def oom_check(backend: Backend, oom: list[str]) -> Check:
    """No kernel OOM kill. Zero kills only counts where the backend enforces memory limits:
    elsewhere an over-limit replica is never killed, so zero is not evidence."""
    if oom or backend.limits_enforced:
        return Check(
            name="oom_kills",
            measured=len(oom),
            target=0,
            ok=not oom,
            note="; ".join(oom[:3]) or "no OOM kill (limits enforced by the kernel)",
        )
    return Check(
        name="oom_kills",
        measured=0,
        target=0,
        ok=False,
        inconclusive=True,
        note=f"backend {backend.name} monitors memory limits but does not enforce them "
        "(no cgroup memory controller or not root): an over-limit replica would not "
        "be OOM-killed, so no kill is no evidence",
    )


def _drive(
    ctx: ScenarioContext,
    backend: Backend,
    limit: int | None,
    allowed: int | None,
    measurements: dict[str, Any],
    t_start: float,
) -> list[Check]:
    prof = ctx.profile
    peak = prof.peak
    pod = sorted((p for p in backend.pods() if p.ready), key=lambda p: p.name)[0].name
    url = backend.pod_url(pod).rstrip("/")
    body = common.body_for(peak.request)
    base = {
        "mode": "closed",
        "body": body,
        "duration_s": peak.duration_s,
        "shape": None,
        "target": url,
        "allow_targets": [url],
    }

    t0 = time.time()
    peak_res = common.run_load(ctx, common.load_spec(ctx, backend, users=peak.concurrency, **base))
    t1 = time.time()
    time.sleep(1.0)  # one more resource sample after the peak
    peak_mem, peak_pod = common.peak_memory(backend.resource_samples(since=t0), t0, time.time())

    # Past peak: open-loop arrivals at overload_factor x the throughput the peak achieved, so
    # the offered load exceeds capacity whatever the service does (closed-loop users would
    # turn every 429 into an instant retry: a retry storm, not an overload).
    peak_rate = max(peak_res.ok / max(peak.duration_s, 1e-9), 1.0)
    # the peak is load the service says it can hold (users <= batch + queue): a refusal there
    # is a sizing failure, not shedding (it once passed with 42 of 15,923 served)
    peak_served = peak_res.ok / max(peak_res.requests, 1)
    over_rate = round(peak_rate * peak.overload_factor, 2)
    t2 = time.time()
    over_spec = common.load_spec(ctx, backend, **{**base, "mode": "open", "rate_rps": over_rate})
    over_res = common.run_load(ctx, over_spec, evidence.OVERLOAD_RUN)
    held, held_how = admission_capacity(ctx)
    over_sent = over_res.requests + over_res.dropped
    min_sent = OVERLOAD_MIN_MULTIPLE * held
    time.sleep(1.0)
    over_mem, _ = common.peak_memory(backend.resource_samples(since=t2), t2, time.time())
    oom = common.oom_evidence(backend, since=t_start)
    shed = common.count_status(over_res, 429, 503)
    unshed = sum(n for k, n in over_res.errors.items() if k not in ("429", "503"))
    rejections = {}
    metric = ctx.server.rejections_metric
    for labels, v in common.pod_metrics(backend, pod).get(f"{metric}_total", []) if metric else []:
        rejections[labels.get("reason", "?")] = v

    measurements.update(
        {
            "pod": pod,
            "peak_users": peak.concurrency,
            "peak_rate_rps": round(peak_rate, 2),
            "overload_rate_rps": over_rate,
            "peak_memory_bytes": peak_mem,
            "peak_memory_pod": peak_pod,
            "overload_memory_bytes": over_mem,
            "peak_ok_requests": peak_res.ok,
            "peak_latency_ms": peak_res.latency_ms,
            "peak_window": [t0, t1],
            "overload_errors": over_res.errors,
            "admission_rejections": rejections,
            "overload_sent": over_sent,
            "admission_capacity": held,
            "oom_evidence": oom,
        }
    )
    bounded = (
        unshed == 0
        and over_mem is not None
        and allowed is not None
        and over_mem <= allowed
        and over_res.ok > 0
    )
    mib = lambda b: None if b is None else round(b / MIB, 1)  # noqa: E731
    checks = [
        common.load_validity_check(peak_res, "the peak load", name="peak_load_valid"),
        Check(
            name="peak_load_delivered",
            measured=round(peak_served, 4),
            target=f">= {PEAK_MIN_SERVED:.0%} of requests served at {peak.concurrency} users",
            ok=peak_served >= PEAK_MIN_SERVED and not peak_res.stopped_early,
            note=f"{peak_res.ok} of {peak_res.requests} served"
            + (f"; errors {peak_res.errors}" if peak_res.errors else "")
            + (
                ""
                if peak.concurrency <= held
                else f"; {peak.concurrency} users is more than admission holds ({held})"
            ),
        ),
        common.load_validity_check(over_res, "the overload", name="overload_valid"),
        Check(
            name="overload_volume",
            measured=over_sent,
            target=f">= {min_sent}",
            ok=over_sent >= min_sent,
            note=f"{OVERLOAD_MIN_MULTIPLE} x what admission holds ({held_how} = {held}); fewer "
            "could all fit and never test shedding",
        ),
    ]
    if limit is None:
        checks.append(
            Check(
                name="memory_limit_set",
                measured=None,
                target="limits.memory",
                ok=False,
                note="no memory limit: a runaway replica takes the node's memory",
            )
        )
    else:
        ok = peak_mem is not None and allowed is not None and peak_mem <= allowed
        checks.append(
            Check(
                name="peak_memory_mib",
                measured=mib(peak_mem),
                target=f"<= {mib(allowed)}",
                unit="MiB",
                ok=ok,
                inconclusive=peak_mem is None,
                note=(
                    f"limit {format_bytes(limit)}, headroom {prof.memory.headroom:.0%}; peak is "
                    f"{(peak_mem or 0) / limit:.0%} of the limit"
                )
                if peak_mem is not None
                else "no memory samples from the backend during the peak",
            )
        )
    checks += [
        oom_check(backend, oom),
        # absorbed without a refusal (and within the limit): the overload did not overload
        Check(
            name="overload_shed",
            measured=shed,
            target="> 0 (429/503)",
            ok=shed > 0,
            inconclusive=not shed and bounded,
            note=f"{shed} of {over_sent} refused"
            if shed
            else (
                f"{over_rate} req/s past peak were all queued and served within the limit: "
                "admission never had to refuse, so shedding was not exercised"
                if bounded
                else f"{over_rate} req/s past peak were never refused: "
                "admission control did not engage"
            ),
        ),
        Check(
            name="overload_unshed_failures",
            measured=unshed,
            target=0,
            ok=unshed == 0,
            note="requests failed without a 429/503 (connection reset, timeout, 5xx) past peak"
            if unshed
            else "",
        ),
    ]
    return checks
