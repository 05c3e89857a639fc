"""chaostoolkit probes over the Gauntlet deployment: the steady-state hypothesis's activities.

`slo_holds` returns the measurement (so the journal shows what the verdict rests on); use it
with the tolerance probe `slo_met`, which passes when every SLO check held:

    "tolerance": {"type": "probe", "name": "slo-met", "provider": {"type": "python",
                  "module": "harness.chaos.steady_state", "func": "slo_met", "arguments": {}}}
"""

from __future__ import annotations

import time
from typing import Any

from harness.chaos.session import current
from harness.load import LoadResult, LoadSpec, run_load
from harness.profile import SLO
from harness.run import evidence
from harness.sla import evaluate


def evaluate_slo(result: LoadResult, slo: SLO) -> dict[str, Any]:
    """The profile's SLO on one load run (harness.sla): valid generator, latency, availability."""
    report = evaluate(result, slo, windows=False, rate_rps=result.requested_rate)
    checks = [c.model_dump(mode="json") for c in report.checks]
    return {
        "holds": report.passed,
        "failed": [c["name"] for c in checks if not c["ok"]],
        "checks": checks,
        "rate_rps": result.requested_rate,
        "achieved_rate": result.achieved_rate,
        "window_s": round(result.duration_s, 2),
        "started_at": result.started_at,
    }


def slo_holds(window_s: float | None = None, rate_rps: float | None = None) -> dict[str, Any]:
    """Measure the SLO now: open-loop load at the profile's rate for `window_s`, then evaluate.

    The run is kept as evidence (`gameday/slo-<n>/`, copied up to `gameday/load-slo-<n>.json`).
    An invalid generator run counts as not holding: it proves nothing.
    """
    gd = current()
    p = gd.profile
    window = float(window_s or max(2 * p.slo.window_s, 5.0))
    spec = LoadSpec.from_profile(
        p,
        gd.backend.service_url(),
        duration_s=window,
        rate_rps=float(rate_rps or p.load.baseline_rps),
    )
    n = len(list(gd.out_dir.glob(evidence.slo_run("*")))) if gd.out_dir.exists() else 0
    run = evidence.slo_run(n)
    result = run_load(spec, gd.out_dir / run)
    gd.keep_load(gd.out_dir / run, run)
    return {
        **evaluate_slo(result, p.slo),
        "evidence": f"{evidence.GAMEDAY_DIR}/{evidence.gameday_load(run)}",
    }


def slo_met(value: dict[str, Any] | bool | None = None) -> bool:
    """Tolerance for `slo_holds`: true when every SLO check held."""
    if isinstance(value, dict):
        return value.get("holds") is True
    return value is True


def replicas_ready() -> int:
    """Number of Ready pods behind the Service."""
    return sum(1 for pod in current().backend.pods() if pod.ready and pod.deletionTimestamp is None)


def replicas_not_ready() -> int:
    """The Deployment's spec.replicas less its Ready pods (0: every replica is Ready).

    A count in a fixed range cannot say "every replica": 2 of 3 Ready passed a [2, ...] range
    while the third stayed Pending after a zone loss."""
    return max(0, current().backend.deployment().spec.replicas - replicas_ready())


def oom_kills_since_start() -> int:
    """Containers OOM-killed since the deployment was made.

    The larger of two counts: container statuses whose (last) termination reason is OOMKilled,
    and OOMKilling events (a status keeps only the last termination; events keep them all).
    """
    gd = current()
    from_status = 0
    for pod in gd.backend.pods():
        for cs in pod.containerStatuses:
            for term in (cs.lastState.terminated, cs.state.terminated):
                if (
                    term is not None
                    and term.reason == "OOMKilled"
                    and term.finishedAt >= gd.started_at
                ):
                    from_status += 1
    from_events = sum(
        e.count
        for e in gd.backend.events(since=gd.started_at)
        if e.reason in ("OOMKilling", "OOMKilled")
    )
    return max(from_status, from_events)


def background_load_summary() -> dict[str, Any]:
    """Live counters of the background load (sent, ok, errors, dropped)."""
    gd = current()
    if gd.load is None:
        return {"running": False}
    return {"running": gd.load.running, **gd.load.progress(), "at": time.time()}
