"""`gauntlet check`: static and what-if checks of manifests against an SLO profile."""

from harness.check.evaluate import has_errors, run_checks
from harness.check.findings import Finding, Severity
from harness.check.targets import Targets, load_measured, targets_for

__all__ = [
    "Finding",
    "Severity",
    "Targets",
    "has_errors",
    "load_measured",
    "run_checks",
    "targets_for",
]
