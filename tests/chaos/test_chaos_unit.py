"""Fast checks of the chaos extension: experiments validate, dry-run, journal -> verdict, plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.loader import load_experiment

from harness.chaos import actions, session
from harness.chaos.journal import deviations, verdict_from_journal
from harness.chaos.plan import describe
from harness.chaos.steady_state import slo_met
from harness.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "scenarios" / "experiments").glob("*.json"))
GAUNTLET = [sys.executable, "-c", "from harness.cli import main; main()"]


def test_the_experiments_exist() -> None:
    assert {p.stem for p in EXPERIMENTS} >= {
        "zone-outage",
        "replica-kill",
        "traffic-spike",
        "memory-pressure",
        "rolling-restart",
    }


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_validates_and_uses_the_control(path: Path) -> None:
    exp = load_experiment(str(path))
    ensure_experiment_is_valid(exp)
    assert any(c["provider"]["module"] == "harness.chaos.control" for c in exp["controls"])
    probes = {p["provider"]["func"] for p in exp["steady-state-hypothesis"]["probes"]}
    assert {"slo_holds", "replicas_not_ready", "oom_kills_since_start"} <= probes
    # every fault that needs undoing has its rollback
    method = {a["provider"]["func"] for a in exp["method"]}
    rollbacks = {a["provider"]["func"] for a in exp["rollbacks"]}
    if "start_background_load" in method:
        assert "stop_background_load" in rollbacks
    if "zone_outage" in method:
        assert "restore_zone" in rollbacks
    if "memory_pressure" in method:
        assert "release_memory" in rollbacks
    # durations come from configuration so tests and game days can shorten/lengthen them
    assert "${gauntlet_slo_window_s}" in json.dumps(exp["steady-state-hypothesis"])


def test_settings_are_typed_like_the_defaults() -> None:
    conf = session.settings_from(
        {
            "gauntlet_debug_endpoints": "true",
            "gauntlet_report": "no",
            "gauntlet_deploy_timeout_s": "12",
            "gauntlet_backend": "",
            "unrelated": 1,
            "gauntlet_profile": {"type": "env"},
        }
    )
    assert conf["gauntlet_debug_endpoints"] is True and conf["gauntlet_report"] is False
    assert conf["gauntlet_deploy_timeout_s"] == 12.0
    assert conf["gauntlet_backend"] == "local" and conf["gauntlet_profile"] == "local"
    assert "unrelated" not in conf


def test_plan_lists_what_each_activity_touches() -> None:
    exp = load_experiment(str(ROOT / "scenarios/experiments/zone-outage.json"))
    rows = describe(
        exp,
        session.settings_from({}),
        {
            "gauntlet_slo_window_s": 5.0,
            "gauntlet_settle_s": 3.0,
            "gauntlet_recovery_timeout_s": 40.0,
        },
    )
    text = {r["activity"]: r["touches"] for r in rows}
    assert "deploys the packaged overlays/local" in text["deploy"]
    assert "every pod and node of zone" in text["lose-a-zone"]
    assert "40.0 s" in text["wait-for-recovery"]
    baseline = load_profile("local").load.baseline_rps
    assert (
        "for 5.0 s" in text["slo-holds"]
        and f"{baseline:g} (profile local baseline)" in text["slo-holds"]
    )
    assert [r["phase"] for r in rows][-3:] == ["rollback", "rollback", "control"]


def test_dry_run_deploys_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            *GAUNTLET,
            "gameday",
            "scenarios/experiments/zone-outage.json",
            "--dry-run",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "lose-a-zone" in proc.stdout and "dry run" in proc.stdout
    assert not out.exists()


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"title": "x", "description": "y", "method": [{"type": "action"}]}))
    for args in (
        ["gameday", str(tmp_path / "missing.json")],
        ["gameday", str(bad)],
        ["gameday", "scenarios/experiments/zone-outage.json", "--var", "novalue", "--dry-run"],
    ):
        proc = subprocess.run(
            [*GAUNTLET, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_rollback_actions_are_safe_without_a_deployment() -> None:
    assert session.active() is None
    assert actions.restore_zone()["restored"] == []
    assert actions.stop_background_load()["stopped"] is False
    assert actions.release_memory()["released"] == []
    with pytest.raises(ActivityFailed, match="no Gauntlet deployment"):
        actions.kill_replica()


def test_slo_met_tolerance() -> None:
    assert slo_met({"holds": True}) and not slo_met({"holds": False}) and not slo_met(None)


# journal -> verdict -------------------------------------------------------------------------
def _run(
    name: str,
    status: str = "succeeded",
    output: Any = None,
    exc: str | None = None,
    tolerance: Any = None,
    met: bool | None = None,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "activity": {"name": name, "tolerance": tolerance},
        "status": status,
        "output": output,
    }
    if exc:
        r["exception"] = ["Traceback ...", f"chaoslib.exceptions.ActivityFailed: {exc}\n"]
    if met is not None:
        r["tolerance_met"] = met
    return r


EXP = {"title": "t", "method": [{"name": "a"}, {"name": "b"}], "rollbacks": [{"name": "r"}]}


def _journal(**kw: Any) -> dict[str, Any]:
    ok = {
        "steady_state_met": True,
        "probes": [_run("replicas-ready", output=3, tolerance={"type": "range"}, met=True)],
    }
    j = {
        "status": "completed",
        "deviated": False,
        "steady_states": {"before": ok, "after": ok},
        "run": [_run("a"), _run("b")],
        "rollbacks": [_run("r")],
        "duration": 12.5,
    }
    j.update(kw)
    return j


def test_verdict_passes_a_clean_journal() -> None:
    v = verdict_from_journal(_journal(), EXP, "local")
    assert v.status == "pass", v.reason
    assert v.measurements["rollbacks_ran"] == "1/1" and v.duration_s == 12.5


def test_verdict_names_what_deviated() -> None:
    after = {
        "steady_state_met": False,
        "probes": [
            _run(
                "replicas-ready",
                output=2,
                tolerance={"type": "range", "range": [3, 1000]},
                met=False,
            ),
            _run(
                "slo-holds",
                output={
                    "holds": False,
                    "failed": ["latency_p90_ms"],
                    "checks": [{"name": "latency_p90_ms", "measured": 950.0, "ok": False}],
                },
                tolerance={"type": "probe"},
                met=False,
            ),
        ],
    }
    j = _journal(
        deviated=True,
        steady_states={"before": _journal()["steady_states"]["before"], "after": after},
    )
    v = verdict_from_journal(j, EXP, "local")
    assert v.status == "fail" and v.reason.startswith("the steady-state hypothesis deviated")
    assert any("replicas-ready measured 2" in d for d in deviations(j))
    assert any("latency_p90_ms" in d and "950.0" in d for d in deviations(j))


def test_verdict_fails_when_an_action_did_not_land_or_rollbacks_missing() -> None:
    j = _journal(
        run=[_run("a"), _run("b", status="failed", exc="zone-outage on zone-a did not land")]
    )
    v = verdict_from_journal(j, EXP, "local")
    assert v.status == "fail" and "did not land" in v.reason
    v = verdict_from_journal(_journal(rollbacks=[]), EXP, "local")
    assert v.status == "fail" and "rollbacks_ran" in v.reason


def test_verdict_fails_an_interrupted_or_undeployed_run() -> None:
    v = verdict_from_journal(_journal(status="interrupted"), EXP, "local")
    assert v.status == "fail" and "interrupted" in v.reason
    v = verdict_from_journal(
        _journal(steady_states={}, run=[]), EXP, "local", deploy_error="BackendError: boom"
    )
    assert v.status == "fail" and "boom" in v.reason


def test_replicas_not_ready_counts_against_spec_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    """2 of 3 Ready is one short (a range like [2, 1000] passed it), a terminating pod counts as
    not Ready, and surplus Ready pods during a rollout do not go negative."""
    from types import SimpleNamespace

    from harness.chaos import steady_state

    def gameday(spec: int, pods: list[tuple[bool, float | None]]) -> SimpleNamespace:
        backend = SimpleNamespace(
            pods=lambda: [SimpleNamespace(ready=r, deletionTimestamp=d) for r, d in pods],
            deployment=lambda: SimpleNamespace(spec=SimpleNamespace(replicas=spec)),
        )
        return SimpleNamespace(backend=backend)

    cases: list[tuple[int, list[tuple[bool, float | None]], int]] = [
        (3, [(True, None), (True, None), (False, None)], 1),
        (2, [(True, None), (True, 5.0)], 1),
        (2, [(True, None), (True, None), (True, None)], 0),
    ]
    for spec, pods, short in cases:
        monkeypatch.setattr(session, "_current", gameday(spec, pods))
        assert steady_state.replicas_not_ready() == short
