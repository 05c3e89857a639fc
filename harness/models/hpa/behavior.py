"""HPA scaling behavior: scaling rules, stabilization windows and rate limits.

A port of the normalization half of pkg/controller/podautoscaler/horizontal.go
(normalizeDesiredReplicas[WithBehaviors], stabilizeRecommendation[WithBehaviors],
convertDesiredReplicasWithRules, convertDesiredReplicasWithBehaviorRate, storeScaleEvent,
getReplicasChangePerPeriod, calculateScale{Up,Down}Limit*) and of copyHPAScalingRules with the
apis/autoscaling/v2 defaults.

The functions are pure over the controller's state: its recommendation list and scale-up /
scale-down event lists are passed in and updated in place, as upstream updates its maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.models._k8s import ModelInputError, to_milli
from harness.models.hpa.replica_calculator import Tolerances

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0

DEFAULT_SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
DEFAULT_SCALE_DOWN = {
    # None: the controller flag --horizontal-pod-autoscaler-downscale-stabilization
    "stabilizationWindowSeconds": None,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}

SCALE_UP_STABILIZED = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
)
SCALE_DOWN_STABILIZED = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, "
    "applying the highest recent recommendation",
)
DESIRED_WITHIN_RANGE = ("DesiredWithinRange", "the desired count is within the acceptable range")
_SCALE_UP_LIMIT = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
)
_SCALE_DOWN_LIMIT = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
)
_TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
_TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")


@dataclass
class TimestampedRecommendation:
    replicas: int
    timestamp: float


@dataclass
class TimestampedScaleEvent:
    change: int
    timestamp: float
    outdated: bool = False


# --- spec.behavior ----------------------------------------------------------------------------


def scaling_rules(raw: dict | None, default: dict, field_name: str) -> dict:
    """copyHPAScalingRules: unset fields come from the defaults."""
    rules = dict(default)
    if raw:
        if not isinstance(raw, dict):
            raise ModelInputError("expected a mapping", field_name)
        for key in ("stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"):
            if raw.get(key) is not None:
                rules[key] = raw[key]
    policies = rules.get("policies") or []
    for i, p in enumerate(policies):
        f = f"{field_name}.policies[{i}]"
        if p.get("type") not in ("Pods", "Percent"):
            raise ModelInputError(
                f"type must be Pods or Percent, got {p.get('type')!r}", f + ".type"
            )
        if not isinstance(p.get("value"), int) or p["value"] <= 0:
            raise ModelInputError("value must be a positive integer", f + ".value")
        period = p.get("periodSeconds")
        if not isinstance(period, int) or not 0 < period <= 1800:
            raise ModelInputError(
                "periodSeconds must be an integer in 1..1800", f + ".periodSeconds"
            )
    if rules["selectPolicy"] not in ("Max", "Min", "Disabled"):
        raise ModelInputError(
            "selectPolicy must be Max, Min or Disabled", field_name + ".selectPolicy"
        )
    return rules


def parse_behavior(
    behavior: dict, downscale_stabilization_s: float, tolerance: float
) -> tuple[dict, Tolerances]:
    """spec.behavior with the defaults applied -> ({scaleUp, scaleDown}, per-direction tolerances).

    An unset scaleDown window is the controller's downscale-stabilization flag."""
    up = scaling_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP, "hpa.spec.behavior.scaleUp")
    down = scaling_rules(
        behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, "hpa.spec.behavior.scaleDown"
    )
    if down["stabilizationWindowSeconds"] is None:
        down["stabilizationWindowSeconds"] = downscale_stabilization_s
    for name, rules in (("scaleUp", up), ("scaleDown", down)):
        w = rules["stabilizationWindowSeconds"]
        if not isinstance(w, (int, float)) or not 0 <= w <= 3600:
            raise ModelInputError(
                "must be 0..3600", f"hpa.spec.behavior.{name}.stabilizationWindowSeconds"
            )
    tol_up = tol_down = tolerance
    if up.get("tolerance") is not None:
        tol_up = to_milli(up["tolerance"], "hpa.spec.behavior.scaleUp.tolerance") / 1000
    if down.get("tolerance") is not None:
        tol_down = to_milli(down["tolerance"], "hpa.spec.behavior.scaleDown.tolerance") / 1000
    return {"scaleUp": up, "scaleDown": down}, Tolerances(scale_down=tol_down, scale_up=tol_up)


# --- rate limits ----------------------------------------------------------------------------


def get_replicas_change_per_period(
    period: float, events: list[TimestampedScaleEvent], now: float
) -> int:
    """getReplicasChangePerPeriod: the replica change of the events newer than now - period."""
    cutoff = now - period
    return sum(e.change for e in events if e.timestamp > cutoff)


def scale_up_limit_with_rules(
    current: int,
    up: list[TimestampedScaleEvent],
    down: list[TimestampedScaleEvent],
    rules: dict,
    now: float,
) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    select = rules["selectPolicy"]
    if select == "Disabled":
        return current
    result: int | None = None
    for p in rules["policies"]:
        period = p["periodSeconds"]
        start = (
            current
            - get_replicas_change_per_period(period, up, now)
            + get_replicas_change_per_period(period, down, now)
        )
        if p["type"] == "Pods":
            proposed = start + p["value"]
        else:
            proposed = math.ceil(start * (1 + p["value"] / 100))
        if result is None:
            result = proposed
        else:
            result = min(result, proposed) if select == "Min" else max(result, proposed)
    return result if result is not None else -(2**31)


def scale_down_limit_with_rules(
    current: int,
    up: list[TimestampedScaleEvent],
    down: list[TimestampedScaleEvent],
    rules: dict,
    now: float,
) -> int:
    """calculateScaleDownLimitWithBehaviors (Percent truncates)."""
    select = rules["selectPolicy"]
    if select == "Disabled":
        return current
    result: int | None = None
    for p in rules["policies"]:
        period = p["periodSeconds"]
        start = (
            current
            - get_replicas_change_per_period(period, up, now)
            + get_replicas_change_per_period(period, down, now)
        )
        if p["type"] == "Pods":
            proposed = start - p["value"]
        else:
            proposed = int(start * (1 - p["value"] / 100))
        if result is None:
            result = proposed
        else:
            result = max(result, proposed) if select == "Min" else min(result, proposed)
    return result if result is not None else 2**31 - 1


def convert_desired_replicas_with_rules(
    current: int,
    desired: int,
    min_r: int,
    max_r: int,
    *,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
) -> tuple[int, str, str]:
    """Legacy (no behavior) clamp: scale-up limit max(factor*current, 4).

    The factor is 2; upstream's unit tests set it to 8."""
    scale_up_limit = int(max(scale_up_limit_factor * current, SCALE_UP_LIMIT_MINIMUM))
    if max_r > scale_up_limit:
        maximum, cond, msg = scale_up_limit, *_SCALE_UP_LIMIT
    else:
        maximum, cond, msg = max_r, *_TOO_MANY
    if desired < min_r:
        return min_r, *_TOO_FEW
    if desired > maximum:
        return maximum, cond, msg
    return desired, *DESIRED_WITHIN_RANGE


def convert_desired_replicas_with_behavior_rate(
    current: int,
    desired: int,
    now: float,
    behavior: dict,
    min_r: int,
    max_r: int,
    up_events: list[TimestampedScaleEvent],
    down_events: list[TimestampedScaleEvent],
) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate -> (replicas, ScalingLimited reason, message)."""
    if desired > current:
        limit = max(
            scale_up_limit_with_rules(current, up_events, down_events, behavior["scaleUp"], now),
            current,
        )
        if max_r > limit:
            maximum, reason, msg = limit, *_SCALE_UP_LIMIT
        else:
            maximum, reason, msg = max_r, *_TOO_MANY
        if desired > maximum:
            return maximum, reason, msg
    elif desired < current:
        limit = min(
            scale_down_limit_with_rules(
                current, up_events, down_events, behavior["scaleDown"], now
            ),
            current,
        )
        if min_r < limit:
            minimum, reason, msg = limit, *_SCALE_DOWN_LIMIT
        else:
            minimum, reason, msg = min_r, *_TOO_FEW
        if desired < minimum:
            return minimum, reason, msg
    return desired, *DESIRED_WITHIN_RANGE


# --- stabilization ----------------------------------------------------------------------------


def _record(
    recommendations: list[TimestampedRecommendation], old_idx: int, desired: int, now: float
) -> None:
    """Store the new recommendation in the slot of an outdated one, else append it."""
    new = TimestampedRecommendation(desired, now)
    if old_idx >= 0:
        recommendations[old_idx] = new
    else:
        recommendations.append(new)


def stabilize_recommendation(
    recommendations: list[TimestampedRecommendation], desired: int, now: float, window: float
) -> int:
    """stabilizeRecommendation (no spec.behavior): the max over the downscale window."""
    cutoff = now - window
    best = desired
    old_idx = -1
    for i, rec in enumerate(recommendations):
        if rec.timestamp < cutoff:
            old_idx = i
        elif rec.replicas > best:
            best = rec.replicas
    _record(recommendations, old_idx, desired, now)
    return best


def stabilize_recommendation_with_behaviors(
    recommendations: list[TimestampedRecommendation],
    current: int,
    desired: int,
    now: float,
    behavior: dict,
) -> tuple[int, str, str]:
    """stabilizeRecommendationWithBehaviors -> (replicas, AbleToScale reason, message)."""
    up_cutoff = now - float(behavior["scaleUp"]["stabilizationWindowSeconds"])
    down_cutoff = now - float(behavior["scaleDown"]["stabilizationWindowSeconds"])
    up_rec = down_rec = desired
    old_idx = -1
    for i, rec in enumerate(recommendations):
        if rec.timestamp > up_cutoff:
            up_rec = min(rec.replicas, up_rec)
        if rec.timestamp > down_cutoff:
            down_rec = max(rec.replicas, down_rec)
        if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
            old_idx = i
    rec_out = current
    if rec_out < up_rec:
        rec_out = up_rec
    if rec_out > down_rec:
        rec_out = down_rec
    _record(recommendations, old_idx, desired, now)
    if desired >= current:
        return rec_out, *SCALE_UP_STABILIZED
    return rec_out, *SCALE_DOWN_STABILIZED


# --- scale events ----------------------------------------------------------------------------


def store_scale_event(
    behavior: dict,
    up_events: list[TimestampedScaleEvent],
    down_events: list[TimestampedScaleEvent],
    prev: int,
    new: int,
    now: float,
) -> None:
    """storeScaleEvent: reuses an outdated slot (older than the longest policy period)."""
    if new > prev:
        events, rules, change = up_events, behavior["scaleUp"], new - prev
    else:
        events, rules, change = down_events, behavior["scaleDown"], prev - new
    longest = max((p["periodSeconds"] for p in rules["policies"]), default=0)
    cutoff = now - longest
    idx = -1
    for i, e in enumerate(events):
        if e.timestamp < cutoff:
            e.outdated = True
        if e.outdated:
            idx = i
    ev = TimestampedScaleEvent(change, now)
    if idx >= 0:
        events[idx] = ev
    else:
        events.append(ev)
