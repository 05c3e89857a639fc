"""The machine-speed probe measures for real, in its own process, and says why when it cannot."""

from __future__ import annotations

from harness import machine_speed


def test_the_probe_times_decode_steps_of_the_preset() -> None:
    speed = machine_speed.probe("tiny")
    assert speed.decode_step_ms is not None, speed.how
    assert 0.05 < speed.decode_step_ms < 1000 and "median of" in speed.how
    assert machine_speed.probe("tiny") is speed  # once per process


def test_a_probe_that_cannot_run_says_why() -> None:
    speed = machine_speed.probe("no-such-preset")
    assert speed.decode_step_ms is None and "unknown preset" in speed.how
