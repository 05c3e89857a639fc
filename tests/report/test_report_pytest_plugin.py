"""scenarios/conftest.py: options, fixtures, verdict -> pass/skip/fail, and the session report.

Runs pytest in a subprocess on a temporary copy of the conftest with fake scenario tests, so
nothing is deployed and the real plugin code is what runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report import load_report

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

PLUGIN = '''
from pathlib import Path
import fakes_report
import harness.certify as c
from harness.manifests.bundle import ManifestBundle
from harness.scenarios import base
c.make_backend_factory = lambda name, options: fakes_report.fake_factory
c.load_manifests = lambda p: ManifestBundle.from_yaml(Path(p).read_text(), source=str(p))
base.SCENARIOS = {"cold-start": "fakes_report:cold_start_pass", "oom-headroom": "fakes_report:skip",
                  "zone-failure": "fakes_report:zone_fail"}
'''

TEST = '''
from harness.scenarios import run_scenario

def test_{mod}(scenario_ctx, record_verdict):
    record_verdict(run_scenario("{name}", scenario_ctx("{name}")))
'''


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "scenarios" / "conftest.py", tmp_path / "conftest.py")
    shutil.copy(HERE / "fakes_report.py", tmp_path / "fakes_report.py")
    (tmp_path / "fakeplugin_report.py").write_text(PLUGIN)
    (tmp_path / "manifests.yaml").write_text((tmp_path / "fakes_report.py").read_text().split('"""\\\n')[1].split('"""')[0])
    # file order differs from SCENARIOS order on purpose: the plugin sorts them
    for name in ("zone-failure", "oom-headroom", "cold-start"):
        mod = name.replace("-", "_")
        (tmp_path / f"test_{mod}.py").write_text(TEST.format(mod=mod, name=name))
    return tmp_path


def run_pytest(suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{suite}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fakeplugin_report", "-p", "no:cacheprovider",
         "--rootdir", str(suite), "-v", "--manifests", str(suite / "manifests.yaml"), *args, str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=240,
    )


def test_verdicts_map_to_pytest_outcomes_and_a_report(suite):
    proc = run_pytest(suite, "--out", str(suite / "run"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("test_") and "::test_" in ln]
    assert [ln.split("::")[1].split()[0:2] for ln in lines] == [
        ["test_cold_start", "PASSED"], ["test_oom_headroom", "SKIPPED"], ["test_zone_failure", "FAILED"]]
    assert "zone-failure fail: latency_p90_ms: measured 450.0" in proc.stdout
    report = load_report(suite / "run")
    assert [(s.name, s.verdict) for s in report.scenarios] == [
        ("cold-start", "pass"), ("oom-headroom", "skip"), ("zone-failure", "fail")]
    assert report.result == "fail" and report.requested == ["cold-start", "oom-headroom", "zone-failure"]
    assert (suite / "run" / "junit.xml").is_file() and (suite / "run" / "report.html").is_file()
    assert (suite / "run" / "zone-failure" / "load.json").is_file()


def test_only_deselects_and_bad_input_exits_2(suite):
    proc = run_pytest(suite, "--out", str(suite / "one"), "--only", "cold-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 2 deselected" in proc.stdout
    assert [s.name for s in load_report(suite / "one").scenarios] == ["cold-start"]
    proc = run_pytest(suite, "--out", str(suite / "bad"), "--profile", "no-such-profile")
    assert proc.returncode == 2
    assert "no profile named 'no-such-profile'" in proc.stdout + proc.stderr
