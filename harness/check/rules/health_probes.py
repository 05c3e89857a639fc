"""Probe rules: no kill during a p95 cold start, readiness gates traffic, hangs get caught."""

from __future__ import annotations

import math

from harness.check.findings import Finding
from harness.check.rules._base import finding, secs
from harness.check.targets import Targets
from harness.check.whatif import probe_window
from harness.check.workload import Workload, probe, probe_target


def _paths(w: Workload) -> tuple[str, str]:
    """(readiness, liveness) endpoints a fix names: vLLM's own (/v1/models, /health), else the
    reference service's (/ready, /healthz)."""
    kind = w.server
    if kind.name == "vllm" and kind.ready_path and kind.health_path:
        return kind.ready_path, kind.health_path
    return "/ready", "/healthz"


def startup_kill(w: Workload, t: Targets) -> list[Finding]:
    """Would a container that loads in p95 x margin be killed by its startup/liveness probe?"""
    out: list[Finding] = []
    cold = t.cold_start_p95_s
    margin = t.profile.probes.margin
    for i in w.serving_indexes():
        c = w.containers[i]
        if not (probe(c, "startupProbe") or probe(c, "livenessProbe")):
            continue
        if cold is None:
            out.append(
                finding(
                    w,
                    "startup-kill",
                    "info",
                    w.container_field(i),
                    "cold start unknown: probe budget not checked",
                    fix="pass --measured report.json or set "
                    "cold_start.declared_p95_s in the profile",
                )
            )
            continue
        need = cold.value * margin
        win = probe_window(w.pod_spec, c, need)
        if not win.killed_at_load or win.kill_earliest_s is None:
            continue
        at_p95 = probe_window(w.pod_spec, c, cold.value)
        gate = win.probe_kind or "livenessProbe"
        g = probe(c, gate) or {}
        if gate == "startupProbe":
            f_new = math.ceil((need - g["initialDelaySeconds"]) / g["periodSeconds"]) + 1
            fix = (
                f"raise startupProbe.failureThreshold to >= {f_new} (budget "
                f"{g['initialDelaySeconds']} + ({f_new} - 1) x {g['periodSeconds']} s)"
            )
        else:
            p = 5 if need > 30 else 1
            fix = (
                f"add a startupProbe (e.g. periodSeconds {p}, failureThreshold "
                f"{math.ceil(need / p) + 1}) so liveness only starts after the load; "
                "do not stretch livenessProbe.initialDelaySeconds instead"
            )
        certain = at_p95.killed_at_load
        out.append(
            finding(
                w,
                "startup-kill",
                "error",
                w.container_field(i, gate),
                f"container {c.get('name')!r} is killed by its {gate} while still loading"
                + (" at the p95 cold start" if certain else f" at p95 x margin {margin:g}")
                + (
                    " (no startupProbe: liveness runs during the load)"
                    if gate == "livenessProbe"
                    else ""
                ),
                measured=f"first possible kill {secs(win.kill_earliest_s)}, certain kill "
                f"{secs(win.kill_latest_s)} after container start",
                required=f"no kill before p95 cold start {cold.value:g} s x margin {margin:g} = "
                f"{need:g} s",
                fix=fix,
                basis=f"{cold.basis}; {win.engine}",
            )
        )
    return out


def readiness(w: Workload, t: Targets) -> list[Finding]:
    out: list[Finding] = []
    for i in w.serving_indexes():
        c = w.containers[i]
        r = probe(c, "readinessProbe")
        if r is None:
            out.append(
                finding(
                    w,
                    "readiness-missing",
                    "error",
                    w.container_field(i, "readinessProbe"),
                    f"container {c.get('name')!r} has no readinessProbe: it counts as Ready as "
                    "soon as it starts, so traffic reaches replicas still loading the model or "
                    "draining",
                    measured="no readinessProbe",
                    required="a readinessProbe that fails until the "
                    "model is loaded and while draining",
                    fix=(
                        f"add readinessProbe: {{httpGet: {{path: {_paths(w)[0]}, port: http}}, "
                        "periodSeconds: 2}"
                    ),
                )
            )
            continue
        live = probe(c, "livenessProbe")
        if live is not None and probe_target(live) == probe_target(r):
            out.append(
                finding(
                    w,
                    "readiness-is-liveness",
                    "warning",
                    w.container_field(i, "readinessProbe"),
                    "readiness and liveness probe the same endpoint: a busy or draining replica is "
                    "either kept in rotation or restarted, never just taken out of traffic",
                    measured=f"both call {'/'.join(probe_target(r))}",
                    required=(
                        "distinct endpoints (ready = can take traffic; healthz = process alive)"
                    ),
                    fix=f"point readinessProbe at a readiness endpoint (e.g. {_paths(w)[0]})",
                )
            )
    return out


def liveness(w: Workload, t: Targets) -> list[Finding]:
    out: list[Finding] = []
    target = t.profile.probes.hang_detect_s
    for i in w.serving_indexes():
        c = w.containers[i]
        live = probe(c, "livenessProbe")
        if live is None:
            out.append(
                finding(
                    w,
                    "liveness-missing",
                    "warning",
                    w.container_field(i, "livenessProbe"),
                    f"container {c.get('name')!r} has no livenessProbe: a hung inference loop is "
                    "never restarted",
                    measured="no livenessProbe",
                    required=f"hang detected within {target:g} s",
                    fix="add livenessProbe on an endpoint that checks the inference loop "
                    f"(e.g. {_paths(w)[1]})",
                )
            )
            continue
        worst = live["failureThreshold"] * live["periodSeconds"] + live["timeoutSeconds"]
        if worst > target:
            out.append(
                finding(
                    w,
                    "hang-detect-slow",
                    "warning",
                    w.container_field(i, "livenessProbe"),
                    "a hung replica is detected later than the profile allows",
                    measured=(
                        f"up to {worst:g} s (failureThreshold x periodSeconds + timeoutSeconds)"
                    ),
                    required=f"<= {target:g} s (profile probes.hang_detect_s)",
                    fix="lower livenessProbe.periodSeconds or failureThreshold",
                    basis=f"profile {t.profile.name}",
                )
            )
    return out


RULES = [startup_kill, readiness, liveness]
