"""The hpa scenario as a pytest suite (logic in harness/scenarios/hpa.py)."""

from harness.scenarios import run_scenario


def test_hpa(scenario_ctx, record_verdict):
    ctx = scenario_ctx("hpa")
    verdict = run_scenario("hpa", ctx)
    record_verdict(verdict)
    assert verdict.status in ("pass", "skip"), f"{verdict.status}: {verdict.reason}"
