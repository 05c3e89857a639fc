"""Turn a chaostoolkit journal into a Gauntlet verdict and report (same layout as `certify`).

pass only when the hypothesis held before and after the method, every action landed (and
succeeded), every declared rollback ran, and the experiment completed (not interrupted).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.run import evidence
from harness.verdict import Check, Verdict

#: the files a game day's verdict points at (relative to the run dir), where they exist
EVIDENCE = [evidence.JOURNAL] + [
    f"{evidence.GAMEDAY_DIR}/{name}"
    for name in (
        evidence.FAULTS,
        evidence.gameday_load(evidence.BACKGROUND_RUN),
        evidence.EVENTS,
        evidence.PODS,
        evidence.NODES,
        evidence.GAMEDAY_MEASUREMENTS,
    )
]


def _name(run: dict[str, Any]) -> str:
    return str((run.get("activity") or {}).get("name", "?"))


def _failed_runs(runs: list[dict[str, Any]]) -> list[str]:
    return [
        f"{_name(r)}: {(r.get('exception') or [r.get('status')])[-1]!s}".strip()
        for r in runs
        if r.get("status") != "succeeded"
    ]


def _steady(journal: dict[str, Any], when: str) -> dict[str, Any] | None:
    return (journal.get("steady_states") or {}).get(when)


def deviations(journal: dict[str, Any]) -> list[str]:
    """Hypothesis probes that missed their tolerance (or failed), with what they measured."""
    out = []
    for when in ("before", "after"):
        for p in (_steady(journal, when) or {}).get("probes", []):
            if p.get("status") != "succeeded":
                out.append(
                    f"{when}: {_name(p)} failed ({(p.get('exception') or ['?'])[-1]!s}".strip()
                    + ")"
                )
            elif p.get("tolerance_met") is False:
                output = p.get("output")
                if isinstance(output, dict) and "failed" in output:
                    checks = {
                        c["name"]: c["measured"] for c in output.get("checks", []) if not c["ok"]
                    }
                    shown: Any = checks
                else:
                    shown = output
                tol = (p.get("activity") or {}).get("tolerance")
                tol_s = "probe" if isinstance(tol, dict) and tol.get("type") == "probe" else tol
                out.append(f"{when}: {_name(p)} measured {shown} (tolerance {tol_s})")
    return out


def verdict_from_journal(
    journal: dict[str, Any],
    experiment: dict[str, Any],
    profile: str,
    deploy_error: str | None = None,
    faults: list[dict[str, Any]] | None = None,
) -> Verdict:
    method_failed = _failed_runs(journal.get("run") or [])
    rollbacks = journal.get("rollbacks") or []
    rb_failed = _failed_runs(rollbacks)
    expected_rb = len(experiment.get("rollbacks") or [])
    before, after = _steady(journal, "before"), _steady(journal, "after")
    before_ok = None if before is None else bool(before.get("steady_state_met"))
    after_ok = None if after is None else bool(after.get("steady_state_met"))
    deviated = deviations(journal)
    status = journal.get("status")
    checks = [
        Check(
            name="deployed",
            measured=deploy_error is None,
            target=True,
            ok=deploy_error is None,
            note=deploy_error or "",
        ),
        Check(
            name="steady_state_before",
            measured=before_ok,
            target=True,
            ok=before_ok is True,
            note="; ".join(d for d in deviated if d.startswith("before"))
            or ("not run" if before is None else ""),
        ),
        Check(
            name="steady_state_after",
            measured=after_ok,
            target=True,
            ok=after_ok is True,
            note="; ".join(d for d in deviated if d.startswith("after"))
            or ("not run" if after is None else ""),
        ),
        Check(
            name="actions_landed",
            measured=f"{len(journal.get('run') or []) - len(method_failed)}"
            f"/{len(experiment.get('method') or [])}",
            target=f"{len(experiment.get('method') or [])}/{len(experiment.get('method') or [])}",
            ok=not method_failed
            and len(journal.get("run") or []) == len(experiment.get("method") or []),
            note="; ".join(method_failed),
        ),
        Check(
            name="rollbacks_ran",
            measured=f"{len(rollbacks) - len(rb_failed)}/{expected_rb}",
            target=f"{expected_rb}/{expected_rb}",
            ok=not rb_failed and len(rollbacks) == expected_rb,
            note="; ".join(rb_failed),
        ),
        Check(
            name="experiment_status", measured=status, target="completed", ok=status == "completed"
        ),
    ]
    probes: dict[str, Any] = {}
    for when in ("before", "after"):
        for p in (_steady(journal, when) or {}).get("probes", []):
            probes[f"{when}.{_name(p)}"] = p.get("output")
    verdict = Verdict.from_checks(
        evidence.GAMEDAY_DIR,
        profile,
        checks,  # the name is also the evidence folder the report reads
        measurements={
            **{c.name: c.measured for c in checks},
            "experiment": experiment.get("title"),
            "deviated": bool(journal.get("deviated")),
            "deviations": deviated,
            "probes": probes,
            "faults": [
                {
                    k: f.get(k)
                    for k in ("kind", "target", "landed", "affected", "detail", "started_at")
                }
                for f in faults or []
            ],
            "rollbacks": [
                {"name": _name(r), "status": r.get("status"), "output": r.get("output")}
                for r in rollbacks
            ],
            "duration_s": journal.get("duration"),
        },
        evidence=list(EVIDENCE),
    )
    if journal.get("deviated"):
        verdict.reason = "the steady-state hypothesis deviated: " + verdict.reason
    verdict.duration_s = float(journal.get("duration") or 0.0)
    return verdict


def write_report(
    journal: dict[str, Any], experiment: dict[str, Any], conf: dict[str, Any], run_dir: Path
) -> Verdict:
    """report.json, junit.xml and report.html in `run_dir` (evidence under `run_dir/gameday/`):
    the report certify writes, with the game day as its one scenario."""
    from harness.chaos import session
    from harness.report import ScenarioResult, write_outputs
    from harness.run.engine import new_report

    gd = (
        session.last_closed
        if session.last_closed is not None and session.last_closed.run_dir == run_dir
        else None
    )
    inputs = gd.inputs if gd is not None else session.resolve(conf)
    faults = [f.model_dump() for f in gd.faults] if gd is not None else []
    verdict = verdict_from_journal(
        journal,
        experiment,
        inputs.profile.name,
        deploy_error=None
        if gd is not None
        else (session.deploy_error or "the control did not deploy"),
        faults=faults,
    )
    verdict.backend = inputs.backend.name
    if gd is not None and not gd.backend.limits_enforced:
        verdict.caveats.append(
            "memory limits monitored, not enforced (no root/cgroup memory controller)"
        )
    verdict.evidence = [e for e in verdict.evidence if (run_dir / e).exists()]
    now = time.time()
    started = gd.started_at if gd is not None else now - float(journal.get("duration") or 0.0)
    report = new_report(
        inputs,
        run_dir.name,
        [verdict.name],
        ["gauntlet", "gameday", str(experiment.get("title"))],
        gd.backend.limits_enforced if gd is not None else None,
    )
    interrupted = journal.get("status") == "interrupted" and gd is not None
    report.started_at, report.finished_at = started, now
    report.interrupted, report.interrupted_during = (
        interrupted,
        verdict.name if interrupted else None,
    )
    report.scenarios = [ScenarioResult.from_verdict(verdict, started_at=started, finished_at=now)]
    write_outputs(report.finalize(), run_dir)
    if gd is not None:
        gd.log(f"{verdict.status.upper()}: {verdict.reason}; report in {run_dir}")
    return verdict
