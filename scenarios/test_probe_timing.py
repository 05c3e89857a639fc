"""The probe-timing scenario as a pytest suite (logic in harness/scenarios/probe_timing.py)."""

from harness.scenarios import run_scenario


def test_probe_timing(scenario_ctx, record_verdict):
    ctx = scenario_ctx("probe-timing")
    verdict = run_scenario("probe-timing", ctx)
    record_verdict(verdict)
    assert verdict.status in ("pass", "skip"), f"{verdict.status}: {verdict.reason}"
