"""Shutdown rules: the grace period covers preStop + drain, and a preStop hides endpoint lag."""

from __future__ import annotations

from harness.check.findings import Finding
from harness.check.rules._base import finding
from harness.check.targets import Targets
from harness.check.workload import (
    DRAIN_ENV,
    POD_SPEC,
    Workload,
    env_value,
    prestop_seconds,
)
from harness.servers.command_line import flag_value


def _drain(w: Workload, i: int) -> tuple[tuple[str, float] | None, Finding | None]:
    """The container's drain timeout as (where it comes from, seconds), or None when unknown.

    A server with a drain flag of its own (vLLM's --shutdown-timeout) drains as the flag says,
    absent = its default 0 (no drain: server-drain reports that); an env var is not read for it
    (vLLM's VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS matches *SHUTDOWN*TIMEOUT* but is no drain).
    A flag whose value cannot be read gives an info instead of the env-var one."""
    c = w.containers[i]
    kind = w.server
    if kind.drain_flag is None or i not in w.server_indexes():
        return env_value(c, DRAIN_ENV), None
    f = flag_value(c, kind.drain_flag)
    if f.known:
        return (kind.drain_flag, max(f.number or 0.0, 0.0)), None
    why = (
        f"{f} is not a number"
        if f.given
        else f"{kind.drain_flag} is not on the command line and --config may set it"
    )
    return None, finding(
        w,
        "grace-period",
        "info",
        w.container_field(i, "args"),
        f"drain timeout unknown ({why}): grace period checked only against the preStop hook",
        fix=f"pass {kind.drain_flag}=<seconds> on the command line",
    )


def grace(w: Workload, t: Targets) -> list[Finding]:
    out: list[Finding] = []
    g = w.grace_period_s
    gfield = f"{POD_SPEC}.terminationGracePeriodSeconds"
    for i in w.serving_indexes():
        c = w.containers[i]
        pre = prestop_seconds(c)
        drain, unknown = _drain(w, i)
        need = (pre or 0) + (drain[1] if drain else 0)
        # the server's own flag at 0 / absent: it does not drain (server-drain says so)
        server_no_drain = drain is not None and drain[0].startswith("--") and drain[1] == 0
        if drain is None or server_no_drain:
            if pre is not None and pre >= g:
                out.append(
                    finding(
                        w,
                        "grace-period",
                        "error",
                        gfield,
                        "the preStop hook alone uses the whole grace period: SIGTERM comes with "
                        "at most 2 s left, so nothing drains",
                        measured=f"terminationGracePeriodSeconds {g}, preStop {pre:g} s",
                        required=f"> preStop {pre:g} s + drain time",
                        fix="raise terminationGracePeriodSeconds",
                    )
                )
            elif unknown is not None:
                out.append(unknown)
            elif drain is None:
                out.append(
                    finding(
                        w,
                        "grace-period",
                        "info",
                        w.container_field(i, "env"),
                        "drain timeout unknown (no *DRAIN*TIMEOUT* env var): grace period checked "
                        "only against the preStop hook",
                        fix="expose the drain timeout as an env var, e.g. GAUNTLET_DRAIN_TIMEOUT_S",
                    )
                )
            continue
        if g < need:
            out.append(
                finding(
                    w,
                    "grace-period",
                    "error",
                    gfield,
                    f"grace period {g} s is shorter than preStop {pre or 0:g} s + drain "
                    f"{drain[1]:g} s: in-flight requests are cut off by SIGKILL on every "
                    "scale-down, rollout and drain",
                    measured=f"terminationGracePeriodSeconds {g}",
                    required=f">= preStop {pre or 0:g} s + {drain[0]} {drain[1]:g} s = {need:g} s",
                    fix=(
                        f"set terminationGracePeriodSeconds: {int(need) + 5} (or shorten the drain"
                        + (f": lower {drain[0]})" if drain[0].startswith("--") else ")")
                    ),
                    basis="manifest",
                )
            )
    return out


def prestop(w: Workload, t: Targets) -> list[Finding]:
    if not w.services:
        return []
    out: list[Finding] = []
    for i in w.serving_indexes():
        c = w.containers[i]
        if prestop_seconds(c) is None:
            out.append(
                finding(
                    w,
                    "prestop-missing",
                    "warning",
                    w.container_field(i, "lifecycle.preStop"),
                    f"container {c.get('name')!r} gets SIGTERM while the Service still sends it "
                    "requests (EndpointSlice updates lag the deletion by a few seconds)",
                    measured="no preStop hook",
                    required="a short preStop delay (2-10 s)",
                    fix="add lifecycle.preStop.sleep.seconds: 5 and include it in the grace period",
                )
            )
    return out


RULES = [grace, prestop]
