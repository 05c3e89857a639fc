"""Check rules. Each rule function takes a Workload and the Targets and returns Findings."""

from __future__ import annotations

from collections.abc import Callable

from harness.check.findings import Finding
from harness.check.targets import Targets
from harness.check.workload import Workload

Rule = Callable[[Workload, Targets], list[Finding]]


def all_rules() -> list[Rule]:
    from harness.check.rules import (
        availability,
        health_probes,
        keda,
        lifecycle,
        memory,
        rollout_safety,
        scaling,
        server,
    )

    return [
        *health_probes.RULES,
        *memory.RULES,
        *lifecycle.RULES,
        *server.RULES,
        *scaling.RULES,
        *keda.RULES,
        *availability.RULES,
        *rollout_safety.RULES,
    ]
