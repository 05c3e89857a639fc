"""The five certification scenarios. Each is `run(ctx: ScenarioContext) -> Verdict`,
backend-agnostic."""

from harness.scenarios.base import SCENARIOS, ScenarioContext, run_scenario

__all__ = ["SCENARIOS", "ScenarioContext", "run_scenario"]
