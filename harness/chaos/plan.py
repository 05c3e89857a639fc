"""What an experiment would touch, listed without touching anything (`gameday --dry-run`)."""

from __future__ import annotations

from typing import Any

from chaoslib import substitute

from harness import resources

TOUCHES = {
    "zone_outage": "every pod and node of zone {zone} (default: the zone holding most Ready pods)",
    "restore_zone": "nodes of zone {zone} (default: every zone this game day lost)",
    "kill_replica": "one pod: {pod} (default: the oldest Ready pod), deleted without grace",
    "memory_pressure": "one pod: {pod} (default: the newest Ready pod) made to hold {mb} MiB more",
    "release_memory": "the pods memory_pressure hit: the held memory is released",
    "start_background_load": (
        "the deployment's Service: open-loop load at {rate_rps} req/s until stopped"
    ),
    "stop_background_load": "nothing (stops Gauntlet's own load)",
    "spike": "the deployment's Service: {factor} x baseline for {duration_s} s",
    "wait_for_ready_replicas": (
        "nothing (waits up to {timeout_s} s for the Deployment's Ready replicas)"
    ),
    "slo_holds": (
        "the deployment's Service: open-loop load at {rate_rps} req/s for {window_s} s (probe)"
    ),
}
DEFAULT_ARGS = {
    "zone": None,
    "pod": None,
    "mb": 256,
    "rate_rps": "baseline",
    "duration_s": "?",
    "factor": "profile spike",
    "timeout_s": 120,
    "window_s": "2 x SLO window",
}


def activities(experiment: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    hyp = experiment.get("steady-state-hypothesis") or {}
    out += [("hypothesis", a) for a in hyp.get("probes", [])]
    out += [("method", a) for a in experiment.get("method", [])]
    out += [("rollback", a) for a in experiment.get("rollbacks", [])]
    return out


def describe(
    experiment: dict[str, Any],
    settings: dict[str, Any],
    configuration: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """One row per activity: phase, name, what it touches (arguments resolved from
    `configuration`)."""
    manifests = (
        settings.get("gauntlet_manifests") or f"the packaged overlays/{resources.DEFAULT_OVERLAY}"
    )
    rows = [
        {
            "phase": "control",
            "activity": "deploy",
            "touches": f"{settings.get('gauntlet_backend')} backend: deploys {manifests} "
            f"(profile {settings.get('gauntlet_profile')}); "
            f"evidence in {settings.get('gauntlet_out') or 'reports/'}",
        }
    ]
    baseline: dict[str, Any] = {}
    try:
        from harness.profile import load_profile

        p = load_profile(settings.get("gauntlet_profile") or "local")
        baseline = {
            "rate_rps": f"{p.load.baseline_rps:g} (profile {p.name} baseline)",
            "factor": f"{p.spike.factor:g} (profile {p.name})",
        }
    except Exception as err:  # a bad profile fails the real run with its own clear error
        rows[0]["touches"] += f" [profile not loadable: {err}]"
    for phase, act in activities(experiment):
        prov = act.get("provider", {})
        func = prov.get("func", "?")
        given = substitute(dict(prov.get("arguments") or {}), configuration or {}, {})
        args = {**DEFAULT_ARGS, **baseline, **given}
        fallback = (
            "nothing (probe: observes)"
            if act.get("type") == "probe"
            else f"{prov.get('module')}.{func}"
        )
        touches = TOUCHES.get(func, fallback)
        pauses = act.get("pauses") or {}
        if pauses.get("after") is not None:
            touches += f"; then pause {substitute(pauses['after'], configuration or {}, {})} s"
        rows.append(
            {
                "phase": phase,
                "activity": act.get("name", func),
                "touches": touches.format(
                    **{k: ("chosen at run time" if v is None else v) for k, v in args.items()}
                ),
            }
        )
    rows.append(
        {
            "phase": "control",
            "activity": "teardown",
            "touches": (
                "after the rollbacks: stops Gauntlet's load, deletes everything the deploy created"
            ),
        }
    )
    return rows
