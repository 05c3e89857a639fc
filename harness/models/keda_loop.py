"""KEDA's operator loop for a ScaledObject (its scale executor): trigger readings, activation,
cooldown and idle replicas between the polls, beside the HPA KEDA generates
(`harness.models.keda.to_hpa`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.models.keda import (
    ScaledObject,
    ScaleTrigger,
    metric_name,
)


@dataclass
class TriggerReading:
    """One trigger's scaler answer in a poll: value (None on error) and activity."""

    metric: str
    value: float | None
    active: bool
    error: str | None = None


def read_prometheus(index: int, t: ScaleTrigger, value: float | None) -> TriggerReading:
    """GetMetricsAndActivity for a prometheus trigger given the query's value (None: an empty
    result; with ignoreNullValues false that is an error)."""
    name = metric_name(index, t)
    ignore_null = t.metadata.get("ignoreNullValues", "true").lower() != "false"
    if value is None or not math.isfinite(value):
        if ignore_null:
            value = 0.0
        else:
            return TriggerReading(name, None, False, "prometheus query returned no value")
    activation = float(t.metadata.get("activationThreshold", "0") or 0)
    return TriggerReading(name, value, value > activation)


@dataclass
class ScaleResult:
    """What one RequestScale did: the replicas it set (None: left to the HPA), the Active
    condition, and the event it recorded."""

    replicas: int | None
    active_reason: str
    message: str
    event: str | None = None


@dataclass
class ScaleLoop:
    """KEDA's executor for one ScaledObject (RequestScale), driven by the caller's clock."""

    so: ScaledObject
    created_at: float
    last_active: float | None = None
    history: list[tuple[float, ScaleResult]] = field(default_factory=list)

    def request_scale(
        self, now: float, current: int, readings: list[TriggerReading]
    ) -> ScaleResult:
        spec = self.so.spec
        is_active = any(r.active for r in readings)
        is_error = any(r.error for r in readings)
        min_r = spec.min_replica_count
        idle = spec.idleReplicaCount
        if is_active:
            if (idle is not None and current < min_r) or current == 0:
                to = max(min_r, 1)
                res = ScaleResult(
                    to,
                    "ScalerActive",
                    f"Scaled {spec.scaleTargetRef.kind} {spec.scaleTargetRef.name} from "
                    f"{current} to {to}, triggered by "
                    + ";".join(r.metric for r in readings if r.active),
                    "KEDAScaleTargetActivated",
                )
                self.last_active = now
            elif is_error:
                res = ScaleResult(None, "ScalerActive", "PartialTriggerError")
            else:
                self.last_active = now
                res = ScaleResult(None, "ScalerActive", "Scaling is performed (HPA)")
        elif is_error and spec.fallback is not None and spec.fallback.replicas != 0:
            # the metrics server serves the fallback replicas to the HPA (not modelled here)
            res = ScaleResult(None, "ScalerNotActive", "triggers failing: fallback applies")
        elif is_error and spec.fallback is None:
            res = ScaleResult(
                None, "ScalerNotActive", "Triggers defined in ScaledObject are not working"
            )
        elif (idle is not None and current > idle) or (current > 0 and min_r == 0):
            res = self._to_zero_or_idle(now, current)
        elif idle is None and current < min_r:
            res = ScaleResult(
                min_r, "ScalerNotActive", "set ScaleTarget replicas count to minReplicaCount"
            )
        else:
            res = ScaleResult(None, "ScalerNotActive", "triggers are not active")
        self.history.append((now, res))
        return res

    def _to_zero_or_idle(self, now: float, current: int) -> ScaleResult:
        spec = self.so.spec
        if self.last_active is None:
            due = self.created_at + spec.initial_cooldown_period_s
        else:
            due = self.last_active + spec.cooldown_period_s
        if now <= due:  # time.Add(cooldown).Before(now): strictly after
            return ScaleResult(
                None, "ScalerCooldown", "Scaler cooling down because triggers are not active"
            )
        to = spec.idleReplicaCount if spec.idleReplicaCount is not None else spec.min_replica_count
        return ScaleResult(
            to,
            "ScalerNotActive",
            f"Deactivated {spec.scaleTargetRef.kind} {spec.scaleTargetRef.name} from "
            f"{current} to {to}",
            "KEDAScaleTargetDeactivated",
        )
