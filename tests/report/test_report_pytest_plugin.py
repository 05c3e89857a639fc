"""scenarios/conftest.py: options, a result per scenario and per check, the session's report.

Runs pytest in a subprocess on a temporary copy of the conftest and of the real scenario test
files, with fake scenarios registered, so nothing is deployed and the real plugin code (on the
run engine) is what runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.report import load_report

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

PLUGIN = """
import sys
import types
from pathlib import Path

import fakes_report
from harness.manifests.bundle import ManifestBundle
from harness.run import options
from harness.scenarios import base

options.make_backend_factory = lambda name, opts: fakes_report.fake_factory
options.load_manifests = lambda p: ManifestBundle.from_yaml(Path(p).read_text(), source=str(p))


def fake(module, fn, checks):
    m = types.ModuleType(module)
    m.run, m.CHECKS = getattr(fakes_report, fn), checks
    sys.modules[module] = m
    return f"{module}:run"


base.SCENARIOS = {
    "cold-start": fake("fake_cold_start", "cold_start_pass", ("cold_start_p95_s",)),
    "probe-timing": fake("fake_probe_timing", "{probe_timing}", ("ran",)),
    "oom-headroom": fake("fake_oom_headroom", "skip", ("oom_kills",)),
    "zone-failure": fake("fake_zone_failure", "zone_fail",
                         ("latency_p90_ms", "availability", "recovery_s", "drain_completed")),
}
"""


def make_suite(
    path: Path,
    probe_timing: str = "interrupt",
    scenarios: tuple[str, ...] = ("zone-failure", "oom-headroom", "cold-start"),
) -> Path:
    path.mkdir()
    shutil.copy(ROOT / "scenarios" / "conftest.py", path / "conftest.py")
    shutil.copy(HERE / "fakes_report.py", path / "fakes_report.py")
    (path / "fakeplugin_report.py").write_text(PLUGIN.replace("{probe_timing}", probe_timing))
    (path / "manifests.yaml").write_text(
        (path / "fakes_report.py").read_text().split('"""\\\n')[1].split('"""')[0]
    )
    # file order differs from SCENARIOS order on purpose: the plugin sorts them
    for name in scenarios:
        test = f"test_{name.replace('-', '_')}.py"
        shutil.copy(ROOT / "scenarios" / test, path / test)
    return path


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return make_suite(tmp_path / "suite")


def run_pytest(suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{suite}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "fakeplugin_report",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(suite),
            "-v",
            "--gauntlet-manifests",
            str(suite / "manifests.yaml"),
            *args,
            str(suite),
        ],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def outcomes(proc: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("test_") and "::test_" in ln]
    return [(ln.split()[0], ln.split()[1]) for ln in lines]


def test_a_result_per_scenario_and_per_check_and_the_certify_report(suite):
    proc = run_pytest(
        suite, "--gauntlet-out", str(suite / "run"), "--junitxml", str(suite / "j.xml")
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert outcomes(proc) == [
        ("test_cold_start.py::test_scenario", "PASSED"),
        ("test_cold_start.py::test_check[cold_start_p95_s]", "PASSED"),
        ("test_oom_headroom.py::test_scenario", "SKIPPED"),
        ("test_oom_headroom.py::test_check[oom_kills]", "SKIPPED"),
        ("test_zone_failure.py::test_scenario", "FAILED"),
        ("test_zone_failure.py::test_check[latency_p90_ms]", "FAILED"),
        ("test_zone_failure.py::test_check[availability]", "FAILED"),
        ("test_zone_failure.py::test_check[recovery_s]", "PASSED"),
        ("test_zone_failure.py::test_check[drain_completed]", "SKIPPED"),
    ]
    assert "zone-failure fail: latency_p90_ms: measured 450.0" in proc.stdout
    assert "zone-failure latency_p90_ms: measured 450.0 ms vs target 300.0 ms" in proc.stdout
    # the same report certify writes, from the same engine
    run = suite / "run"
    report = load_report(run)
    assert [(s.name, s.verdict) for s in report.scenarios] == [
        ("cold-start", "pass"),
        ("oom-headroom", "skip"),
        ("zone-failure", "fail"),
    ]
    assert report.result == "fail" and report.requested == [
        "cold-start",
        "oom-headroom",
        "zone-failure",
    ]
    assert report.command[0] == "pytest" and not report.interrupted
    for f in (
        "junit.xml",
        "report.html",
        "manifests.yaml",
        "zone-failure/load.json",
        "zone-failure/hpa_history.json",
    ):
        assert (run / f).is_file(), f
    assert "[cold-start] 3 cold starts measured" in (run / "certify.log").read_text()
    # pytest's own JUnit names each check, with the reason of a skip
    cases = {
        c.get("name"): c
        for c in ET.parse(suite / "j.xml").getroot().iter("testcase")
        if c.get("classname") == "test_zone_failure"
    }
    assert cases["test_check[availability]"].find("failure") is not None
    assert cases["test_check[recovery_s]"].find("failure") is None
    skipped = cases["test_check[drain_completed]"].find("skipped")
    assert skipped is not None and "not evaluated" in (skipped.get("message") or "")


def test_only_deselects_and_bad_input_exits_2(suite):
    proc = run_pytest(suite, "--gauntlet-out", str(suite / "one"), "--gauntlet-only", "cold-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed, 7 deselected" in proc.stdout
    assert [s.name for s in load_report(suite / "one").scenarios] == ["cold-start"]
    proc = run_pytest(
        suite, "--gauntlet-out", str(suite / "bad"), "--gauntlet-profile", "no-such-profile"
    )
    assert proc.returncode == 2
    assert "no profile named 'no-such-profile'" in proc.stdout + proc.stderr
    proc = run_pytest(suite, "--gauntlet-out", str(suite / "bad2"), "--gauntlet-only", "nope")
    assert proc.returncode == 2 and "unknown scenario 'nope'" in proc.stdout + proc.stderr


def test_an_interrupted_session_leaves_an_interrupted_report(tmp_path):
    suite = make_suite(
        tmp_path / "suite", "interrupt", ("cold-start", "probe-timing", "zone-failure")
    )
    proc = run_pytest(suite, "--gauntlet-out", str(suite / "run"))
    assert proc.returncode == 2, proc.stdout + proc.stderr  # pytest's INTERRUPTED
    report = load_report(suite / "run")
    assert report.interrupted and report.result == "interrupted"
    assert [s.name for s in report.scenarios] == ["cold-start"]
    assert report.interrupted_during == "probe-timing" and report.not_run == [
        "probe-timing",
        "zone-failure",
    ]
    assert (suite / "run" / "junit.xml").is_file()
