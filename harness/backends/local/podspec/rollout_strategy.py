"""spec.strategy, minReadySeconds and progressDeadlineSeconds with the Deployment's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.backends.local.podspec.pod_template import field_error
from harness.models.intstr import scaled_value

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"


@dataclass
class RolloutSpec:
    replicas: int
    max_surge: int
    max_unavailable: int
    min_ready_s: float
    strategy: str  # RollingUpdate | Recreate
    progress_deadline_s: float = 600.0  # spec.progressDeadlineSeconds


def _fencepost(value: Any, replicas: int, round_up: bool, field_: str, source: str) -> int:
    try:
        return scaled_value(value, replicas, round_up)
    except ValueError:
        raise field_error(
            source, field_, f"not an int or percentage: {value!r}", "use e.g. 1 or 25%"
        ) from None


def parse_rollout(deployment: dict[str, Any], source: str = "") -> RolloutSpec:
    """Deployment defaults and ResolveFenceposts (surge rounds up, unavailable down;
    both 0 -> 1)."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    stype = strategy.get("type", ROLLING_UPDATE)
    ru = strategy.get("rollingUpdate") or {}
    surge = _fencepost(
        ru.get("maxSurge", "25%"), replicas, True, "spec.strategy.rollingUpdate.maxSurge", source
    )
    unavail = _fencepost(
        ru.get("maxUnavailable", "25%"),
        replicas,
        False,
        "spec.strategy.rollingUpdate.maxUnavailable",
        source,
    )
    if surge == 0 and unavail == 0:
        unavail = 1
    deadline = spec.get("progressDeadlineSeconds", 600)
    if not isinstance(deadline, int) or deadline <= 0:
        raise field_error(
            source,
            "spec.progressDeadlineSeconds",
            f"not a positive integer: {deadline!r}",
            "use seconds, e.g. 600 (the default)",
        )
    return RolloutSpec(
        replicas, surge, unavail, float(spec.get("minReadySeconds", 0)), stype, float(deadline)
    )
