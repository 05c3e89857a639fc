"""Self-test: every broken variant fails ITS scenario with evidence; the good overlay passes.

Runs real certifications on the local backend (real processes, the tiny model). Slow: marked
`slow`; each case is a separate test so a pipeline can run them in parallel or pick some.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from selftest_matrix import MATRIX, Case

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _certify(tmp_path: Path, manifests: str, only: list[str]):
    certify_mod = pytest.importorskip("harness.certify")
    opts = certify_mod.CertifyOptions(manifests=manifests, only=only, out=tmp_path / "run", html=False)
    try:
        report, run_dir = certify_mod.certify(opts)
    except Exception as err:  # setup errors (no cgroups, no model) skip with their reason
        from harness.errors import SetupError

        if isinstance(err, SetupError):
            pytest.skip(f"local backend not available here: {err}")
        raise
    return {s.name: s for s in report.scenarios}, run_dir


def _limits_enforced(tmp_path: Path) -> tuple[bool, str]:
    from harness.backends import get_backend

    backend = get_backend("local", tmp_path / "probe-backend")
    try:
        return bool(backend.limits_enforced), str(getattr(backend, "limits_reason", ""))
    finally:
        backend.teardown()


@pytest.mark.parametrize("case", MATRIX, ids=[c.variant for c in MATRIX])
def test_broken_variant_fails_its_scenario(case: Case, tmp_path: Path) -> None:
    if case.needs_enforced_limits:
        enforced, why = _limits_enforced(tmp_path)
        if not enforced:
            pytest.skip(f"{case.variant} needs kernel-enforced memory limits: {why}")
    results, run_dir = _certify(tmp_path, str(REPO / "manifests" / "broken" / case.variant), [case.scenario])
    res = results[case.scenario]
    failed = {c.name for c in res.checks if not c.ok}
    assert res.verdict == "fail", f"{case.variant}: expected fail, got {res.verdict}: {res.reason}"
    assert failed & set(case.evidence_checks), (
        f"{case.variant} failed {case.scenario} but not on its evidence ({case.evidence}); "
        f"failed checks: {sorted(failed)}; reason: {res.reason}")
    assert res.evidence, "a failing verdict must point at its evidence files"
    for rel in res.evidence:
        assert (run_dir / rel).exists(), f"evidence {rel} missing"


def test_good_overlay_passes_all_five(tmp_path: Path) -> None:
    results, _ = _certify(tmp_path, str(REPO / "manifests" / "overlays" / "local"), [])
    assert set(results) == {"cold-start", "probe-timing", "oom-headroom", "zone-failure", "hpa"}
    bad = {n: f"{r.verdict}: {r.reason}" for n, r in results.items() if r.verdict != "pass"}
    assert not bad, f"the good overlay must pass every scenario: {bad}"
