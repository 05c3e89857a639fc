"""The oom-headroom scenario as a pytest suite (logic in harness/scenarios/oom_headroom.py)."""

from harness.scenarios import run_scenario


def test_oom_headroom(scenario_ctx, record_verdict):
    ctx = scenario_ctx("oom-headroom")
    verdict = run_scenario("oom-headroom", ctx)
    record_verdict(verdict)
    assert verdict.status in ("pass", "skip"), f"{verdict.status}: {verdict.reason}"
