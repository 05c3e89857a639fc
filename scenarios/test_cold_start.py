"""The cold-start scenario as a pytest suite (logic in harness/scenarios/cold_start.py)."""

from harness.scenarios import run_scenario


def test_cold_start(scenario_ctx, record_verdict):
    ctx = scenario_ctx("cold-start")
    verdict = run_scenario("cold-start", ctx)
    record_verdict(verdict)
    assert verdict.status in ("pass", "skip"), f"{verdict.status}: {verdict.reason}"
