"""certify end to end on fake scenarios: exit codes, report.json, junit.xml, html, interrupts."""

from __future__ import annotations

import json
import os
import signal
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import fakes_report
import pytest
from fakes_report import quiet

from harness import machine_speed
from harness.cli import main
from harness.errors import InputError
from harness.machine_speed import MachineSpeed
from harness.profile import load_profile
from harness.report import load_report
from harness.run.engine import EXIT_INCONCLUSIVE, EXIT_NOTHING_MEASURED, certify, exit_code
from harness.run.options import CertifyOptions

GOOD = {"cold-start": "cold_start_pass", "zone-failure": "zone_pass"}


def run(tmp_path: Path, manifests: Path, html: bool = False, **kw: Any) -> tuple[int, Path]:
    """html off unless a test reads it: plots cost seconds on a loaded 2-core machine."""
    out = tmp_path / "run"
    opts = CertifyOptions(manifests=str(manifests), out=out, html=html, **kw)
    report, run_dir = certify(opts, console=quiet())
    return exit_code(report, opts.fail_on_skip), run_dir


def junit_suites(run_dir: Path) -> dict[str, ET.Element]:
    root = ET.parse(run_dir / "junit.xml").getroot()
    assert root.tag == "testsuites"
    return {s.get("name", ""): s for s in root.iter("testsuite")}


def junit_cases(run_dir: Path) -> dict[str, ET.Element]:
    """Each scenario's own testcase (the first of its testsuite, named like it)."""
    return {name: s.findall("testcase")[0] for name, s in junit_suites(run_dir).items()}


def junit_checks(run_dir: Path, scenario: str) -> dict[str, ET.Element]:
    """The scenario's per-check testcases."""
    return {c.get("name", ""): c for c in junit_suites(run_dir)[scenario].findall("testcase")[1:]}


def test_all_pass_writes_valid_report_junit_and_html(tmp_path, manifests_file, fake_env):
    fake_env(GOOD)
    code, run_dir = run(tmp_path, manifests_file, html=True)
    assert code == 0
    report = load_report(run_dir / "report.json")  # validates against the schema
    raw = json.loads((run_dir / "report.json").read_text())
    assert raw["schema_version"] == 1
    assert report.result == "pass" and not report.interrupted
    assert [s.name for s in report.scenarios] == ["cold-start", "zone-failure"]
    assert report.profile.name == "local" and report.profile.content["slo"]["latency_ms"] == {
        "p90": 300
    }
    assert report.backend.options["zones"] == ["zone-a", "zone-b", "zone-c"]
    assert report.manifests.objects == ["Deployment/svc", "Service/svc"]
    assert report.environment.cpu_cores >= 1 and report.environment.python
    zone = report.scenario("zone-failure")
    assert zone is not None
    assert zone.measurements["latency_p90_ms"] == 120.0 and zone.targets["latency_p90_ms"] == 300.0
    assert zone.checks and zone.caveats and zone.duration_s >= 0
    for rel in zone.evidence:
        assert (run_dir / rel).is_file(), rel
    # the ScenarioContext wrote the deploy observations; the fake backend was torn down
    for name in ("pods.json", "events.json", "hpa_history.json", "resources.json", "nodes.json"):
        assert (run_dir / "zone-failure" / name).is_file()
    assert fakes_report.FakeBackend.created
    assert len(fakes_report.FakeBackend.torn_down) == len(fakes_report.FakeBackend.created)
    # shared measurements flow between scenarios (cold-start -> later ones)
    assert "3 cold starts measured" in (run_dir / "certify.log").read_text()
    assert (run_dir / "manifests.yaml").read_text().count("kind:") == 2

    cases = junit_cases(run_dir)
    assert set(cases) == {"cold-start", "zone-failure"}
    assert all(len(c) == 1 and c[0].tag == "system-out" for c in cases.values())
    checks = junit_checks(run_dir, "zone-failure")  # each check is its own (passing) testcase
    assert set(checks) == {"latency_p90_ms", "availability", "recovery_s"}
    assert all(len(c) == 1 and c[0].tag == "system-out" for c in checks.values())
    assert checks["latency_p90_ms"].get("classname") == "gauntlet.local.local.zone-failure"
    assert "measured 120.0 ms vs target 300.0 ms" in (checks["latency_p90_ms"][0].text or "")

    html = (run_dir / "report.html").read_text()
    assert "PASS" in html and "zone-failure" in html
    plots = {p.name for p in (run_dir / "plots").glob("*.png")}
    assert {
        "zone-failure-load.png",
        "zone-failure-replicas.png",
        "zone-failure-memory.png",
        "zone-failure-probes.png",
        "cold-start-cold-start.png",
    } <= plots
    assert html.count("data:image/png;base64,") == len(plots)


def test_fail_error_and_skip_verdicts(tmp_path, manifests_file, fake_env):
    fake_env(
        {
            "cold-start": "cold_start_pass",
            "probe-timing": "error",
            "oom-headroom": "skip",
            "zone-failure": "zone_fail",
        }
    )
    code, run_dir = run(tmp_path, manifests_file)
    assert code == 1
    report = load_report(run_dir)
    assert report.result == "error"
    assert report.summary.model_dump() == {
        "total": 4,
        "passed": 1,
        "failed": 1,
        "errors": 1,
        "inconclusive": 0,
        "skipped": 1,
        "not_run": 0,
    }
    zone = report.scenario("zone-failure")
    assert zone is not None and zone.verdict == "fail"
    assert "latency_p90_ms: measured 450.0 ms vs target 300.0 ms" in zone.reason
    err = report.scenario("probe-timing")
    assert err is not None and err.reason == "RuntimeError: backend exploded"
    assert "backend exploded" in (run_dir / err.evidence[0]).read_text()

    cases = junit_cases(run_dir)
    failure = cases["zone-failure"].find("failure")
    assert failure is not None and "450.0" in failure.get("message", "")
    assert "[FAIL] availability" in (failure.text or "")
    assert cases["probe-timing"].find("error") is not None
    skipped = cases["oom-headroom"].find("skipped")
    assert skipped is not None and skipped.get("message") == "no cgroup memory controller"
    assert cases["cold-start"].find("failure") is None
    checks = junit_checks(run_dir, "zone-failure")  # the CI page names the checks that failed
    assert checks["latency_p90_ms"].find("failure") is not None
    assert checks["availability"].find("failure") is not None
    assert checks["recovery_s"].find("failure") is None
    zone_suite = junit_suites(run_dir)["zone-failure"]
    assert (zone_suite.get("tests"), zone_suite.get("failures")) == ("4", "3")
    root = ET.parse(run_dir / "junit.xml").getroot()
    # 4 scenario testcases + 4 checks (cold-start 1, zone-failure 3):
    # 3 failures = the scenario + 2 checks
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "8",
        "3",
        "1",
        "1",
    )


def test_a_skip_beside_a_pass_passes_unless_fail_on_skip(tmp_path, manifests_file, fake_env):
    fake_env({"cold-start": "cold_start_pass", "oom-headroom": "skip"})
    code, run_dir = run(tmp_path, manifests_file)
    assert (code, load_report(run_dir).result) == (0, "pass")
    code, _ = run(tmp_path / "again", manifests_file, fail_on_skip=True)
    assert code == 1


def test_a_machine_slower_than_the_profile_was_sized_on_is_a_caveat_on_every_verdict(
    tmp_path, manifests_file, fake_env, monkeypatch
):
    fake_env(GOOD)
    sized = load_profile("local").machine
    assert sized is not None
    slow = sized.decode_step_ms * (sized.slower_allowed + 1)
    monkeypatch.setattr(machine_speed, "probe", lambda p="tiny": MachineSpeed(p, slow, "probe"))
    _, run_dir = run(tmp_path, manifests_file, html=True)
    report = load_report(run_dir)
    assert "may measure the machine, not the manifests" in (run_dir / "report.html").read_text()
    speed = report.environment.machine_speed
    assert speed is not None and speed.too_slow and speed.decode_step_ms == slow
    assert speed.sized_at_ms == sized.decode_step_ms
    for s in report.scenarios:
        assert any("may measure the machine, not the manifests" in c for c in s.caveats), s.name
    # within the allowance, or when the probe failed: recorded, no caveat
    for ms in (sized.decode_step_ms * sized.slower_allowed, None):
        monkeypatch.setattr(machine_speed, "probe", lambda p="tiny", ms=ms: MachineSpeed(p, ms, ""))
        _, run_dir = run(tmp_path / f"again-{ms}", manifests_file)
        report = load_report(run_dir)
        assert report.environment.machine_speed is not None
        assert not any("the machine" in c for s in report.scenarios for c in s.caveats)


def test_a_run_that_skipped_everything_measured_nothing(tmp_path, manifests_file, fake_env):
    """Every scenario skipped: not green. Its own result and exit code 4."""
    fake_env({"oom-headroom": "skip"})
    code, run_dir = run(tmp_path, manifests_file)
    report = load_report(run_dir)
    assert (code, report.result, report.summary.skipped) == (
        EXIT_NOTHING_MEASURED,
        "nothing-measured",
        1,
    )


def test_an_inconclusive_check_makes_the_scenario_and_run_inconclusive(
    tmp_path, manifests_file, fake_env
):
    """A check that could not observe what it claims is never a pass: the scenario is
    inconclusive (not pass), the run exits 3, JUnit shows a failure of type Inconclusive."""
    fake_env({"cold-start": "cold_start_pass", "oom-headroom": "unobserved"})
    code, run_dir = run(tmp_path, manifests_file)
    report = load_report(run_dir)
    oom = report.scenario("oom-headroom")
    assert oom is not None and oom.verdict == "inconclusive"
    assert oom.reason.startswith("could not observe: oom_kills")
    assert (code, report.result, report.summary.inconclusive) == (
        EXIT_INCONCLUSIVE,
        "inconclusive",
        1,
    )
    failure = junit_cases(run_dir)["oom-headroom"].find("failure")
    assert failure is not None and failure.get("type") == "Inconclusive"
    assert "[????] oom_kills" in (failure.text or "")
    checks = junit_checks(run_dir, "oom-headroom")
    skipped = checks["oom_kills"].find("skipped")
    assert (
        skipped is not None
        and skipped.get("message") == "inconclusive: limits monitored, not enforced"
    )
    assert checks["peak_memory_mib"].find("skipped") is None


def test_a_failed_check_beats_an_inconclusive_one() -> None:
    from harness.verdict import Check, Verdict

    checks = [
        Check(name="a", measured=1, target=0, ok=False),
        Check(name="b", measured=None, target=0, ok=True, inconclusive=True),
    ]
    v = Verdict.from_checks("x", "local", checks)
    assert v.status == "fail" and v.reason.endswith("inconclusive: b")
    assert [c.ok for c in v.checks] == [False, False]  # an inconclusive check is never ok


def test_setup_error_in_a_scenario_exits_2(tmp_path, manifests_file, fake_env):
    fake_env({"cold-start": "setup_missing"})
    code, run_dir = run(tmp_path, manifests_file)
    assert code == 2
    assert (
        load_report(run_dir).scenarios[0].reason.startswith("SetupError: docker is not installed")
    )


def test_interrupt_writes_partial_report_and_tears_down(tmp_path, manifests_file, fake_env):
    fake_env({"cold-start": "cold_start_pass", "probe-timing": "interrupt", "hpa": "zone_pass"})
    code, run_dir = run(tmp_path, manifests_file, html=True)
    assert code == 130
    report = load_report(run_dir)
    assert report.interrupted and report.result == "interrupted"
    assert report.interrupted_during == "probe-timing"
    assert [s.name for s in report.scenarios] == ["cold-start"]
    assert report.not_run == ["probe-timing", "hpa"]
    assert report.finished_at is not None
    assert (
        len(fakes_report.FakeBackend.torn_down) == len(fakes_report.FakeBackend.created) == 3
    )  # + preflight
    cases = junit_cases(run_dir)
    assert set(cases) == {"cold-start", "probe-timing", "hpa"}
    skipped = cases["hpa"].find("skipped")
    assert skipped is not None
    assert "interrupted" in (skipped.get("message") or "")
    html = (run_dir / "report.html").read_text()
    assert "partial report" in html and "not run" in html


def test_sigterm_is_an_interrupt(tmp_path, manifests_file, fake_env, monkeypatch):
    fake_env({"cold-start": "cold_start_pass", "hpa": "zone_pass"})

    def sigterm(ctx):  # the signal lands while a scenario runs, like `kill <pid>` from CI
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(fakes_report, "zone_pass", sigterm)
    before = signal.getsignal(signal.SIGTERM)
    code, run_dir = run(tmp_path, manifests_file)
    assert code == 130
    assert load_report(run_dir).not_run == ["hpa"]
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored


def test_cli_exit_codes(tmp_path, manifests_file, fake_env, capsys):
    fake_env({"cold-start": "cold_start_pass", "zone-failure": "zone_fail"})
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "certify",
                "--manifests",
                str(manifests_file),
                "--out",
                str(tmp_path / "a"),
                "--only",
                "cold-start",
                "--no-html",
            ]
        )
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "certify",
                "--manifests",
                str(manifests_file),
                "--out",
                str(tmp_path / "b"),
                "--no-html",
            ]
        )
    assert exc.value.code == 1
    assert (
        not (tmp_path / "b" / "report.html").exists() and (tmp_path / "b" / "junit.xml").is_file()
    )
    # bad input: exit 2 with a message naming the field and a fix, no traceback
    for args, expected in (
        (["--only", "nope"], "--only: unknown scenario 'nope'"),
        (["--profile", "no-such-profile"], "no profile named"),
        (["--backend", "kube"], "--context: the kube backend needs a context"),
        (["--out", str(tmp_path / "a")], "already holds a report"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(
                ["certify", "--manifests", str(manifests_file), "--out", str(tmp_path / "c"), *args]
            )
        assert exc.value.code == 2, args
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err


def test_missing_manifests_is_input_error(tmp_path, fake_env):
    fake_env(GOOD)
    with pytest.raises(InputError) as exc:
        run(tmp_path, tmp_path / "absent")
    assert exc.value.field == "--manifests"


def test_default_run_dir_and_only_order(tmp_path, manifests_file, fake_env, monkeypatch):
    fake_env(GOOD)
    monkeypatch.chdir(tmp_path)
    opts = CertifyOptions(
        manifests=str(manifests_file), only=["zone_failure,cold-start"], html=False
    )
    report, run_dir = certify(opts, console=quiet())
    assert run_dir.parent == Path("reports") and run_dir.name == report.run_id
    assert [s.name for s in report.scenarios] == ["cold-start", "zone-failure"]  # SCENARIOS order
