"""Self-test: every broken variant fails ITS scenario on ITS evidence; the good overlay passes.

Runs real certifications on the local backend (real processes, the tiny model). Slow: marked
`slow`; each case is a separate test so a pipeline can run them in parallel or pick some. A
backend that cannot be built fails the matrix; the only skip is a named missing prerequisite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from selftest_matrix import MATRIX, Case

from harness.backends import get_backend
from harness.profile import load_profile
from harness.report.environment import machine_speed_info
from harness.report.schema import ScenarioResult
from harness.run.engine import certify
from harness.run.options import CertifyOptions

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.usefixtures("tiny_model")]


#: what is judged on a machine slower than the local profile was sized on: the scenarios whose
#: targets do not scale with the machine's speed (capacity's and hpa's rates do: on a runner
#: 2.9x slower, one good replica held 3.84 req/s, not 48)
NOT_RATE_SIZED = {"cold-start", "probe-timing", "oom-headroom", "zone-failure"}


def _certify(
    tmp_path: Path, manifests: Path, only: list[str]
) -> tuple[dict[str, ScenarioResult], Path]:
    opts = CertifyOptions(manifests=str(manifests), only=only, out=tmp_path / "run", html=False)
    report, run_dir = certify(opts)
    return {s.name: s for s in report.scenarios}, run_dir


def _limits_enforced(tmp_path: Path) -> tuple[bool, str]:
    backend = get_backend("local", tmp_path / "probe-backend")
    try:
        return bool(backend.limits_enforced), backend.limits_reason
    finally:
        backend.teardown()


def _checks(res: ScenarioResult) -> str:
    return "; ".join(f"{c.name}={c.outcome}({c.measured})" for c in res.checks)


def _too_slow() -> str | None:
    """The machine caveat when this machine is slower than the local profile was sized on."""
    speed = machine_speed_info(load_profile("local"))
    return speed.caveat() if speed is not None and speed.too_slow else None


@pytest.mark.parametrize("case", MATRIX, ids=[c.variant for c in MATRIX])
def test_broken_variant_fails_its_scenario(case: Case, tmp_path: Path) -> None:
    slow = _too_slow()
    if slow and case.scenario not in NOT_RATE_SIZED:
        # cpu-starved at 150m there was killed by its startup probe before capacity measured
        pytest.skip(f"{case.variant}'s {case.scenario} evidence is sized in rates: {slow}")
    if case.needs_enforced_limits:
        enforced, why = _limits_enforced(tmp_path)
        if not enforced:
            pytest.skip(f"{case.variant} needs kernel-enforced memory limits: {why}")
    results, run_dir = _certify(
        tmp_path, REPO / "manifests" / "broken" / case.variant, [case.scenario]
    )
    res = results[case.scenario]
    assert res.verdict == "fail", f"{case.variant}: expected fail, got {res.verdict}: {res.reason}"
    failed = {c.name for c in res.checks if not c.ok}  # failed or inconclusive
    assert case.fails_on in failed, (
        f"{case.variant} failed {case.scenario} but not on {case.fails_on} ({case.evidence}): "
        f"{_checks(res)}"
    )
    unexplained = failed - {case.fails_on} - case.explained
    assert not unexplained, (
        f"{case.variant} also failed {sorted(unexplained)}, which its one flaw does not explain: "
        f"{_checks(res)}"
    )
    assert res.evidence, "a failing verdict must point at its evidence files"
    for rel in res.evidence:
        assert (run_dir / rel).exists(), f"evidence {rel} missing"


def test_good_overlay_passes_all_six(tmp_path: Path) -> None:
    slow = _too_slow()
    wanted = NOT_RATE_SIZED if slow else NOT_RATE_SIZED | {"capacity", "hpa"}
    results, _ = _certify(
        tmp_path, REPO / "manifests" / "overlays" / "local", sorted(wanted) if slow else []
    )
    assert set(results) == wanted
    bad = {n: f"{r.verdict}: {r.reason}" for n, r in results.items() if r.verdict != "pass"}
    assert not bad, f"the good overlay must pass every scenario: {bad}"
    caveats = {n: [c for c in r.caveats if c != slow] for n, r in results.items()}
    caveats = {n: c for n, c in caveats.items() if c}
    assert not caveats, (
        f"the good overlay must pass without caveats or RuntimeDeviations: {caveats}"
    )
    if slow:
        pytest.skip(f"capacity and hpa not judged (the other four passed): {slow}")
