"""The zone-failure scenario as a pytest suite (logic in harness/scenarios/zone_failure.py)."""

from harness.scenarios import run_scenario


def test_zone_failure(scenario_ctx, record_verdict):
    ctx = scenario_ctx("zone-failure")
    verdict = run_scenario("zone-failure", ctx)
    record_verdict(verdict)
    assert verdict.status in ("pass", "skip"), f"{verdict.status}: {verdict.reason}"
