"""The probe-timing scenario as a pytest suite: its verdict, then one result per check it declares.

Logic in harness/scenarios/probe_timing.py; how a verdict and a check become pytest outcomes:
scenarios/conftest.py.
"""


def test_scenario(gauntlet_scenario):
    gauntlet_scenario.verdict()


def test_check(gauntlet_scenario, gauntlet_check):
    gauntlet_scenario.check(gauntlet_check)
