"""The capacity scenario as a pytest suite: its verdict, then one result per check it declares.

Logic in harness/scenarios/capacity.py; how a verdict and a check become pytest outcomes:
scenarios/conftest.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scenarios.conftest import ScenarioTest


def test_scenario(gauntlet_scenario: ScenarioTest) -> None:
    gauntlet_scenario.verdict()


def test_check(gauntlet_scenario: ScenarioTest, gauntlet_check: str) -> None:
    gauntlet_scenario.check(gauntlet_check)
