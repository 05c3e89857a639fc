"""HorizontalPodAutoscaler (autoscaling/v2) controller model, a port of horizontal.go.

`HPAController.reconcile` is one pass of `reconcileAutoscaler`: per-metric proposals
(metrics.py over replica_calculator.py), max over metrics with the partial-failure rule, min/max
snapping, then the legacy normalization (no `spec.behavior`) or stabilization windows + rate
policies with scale-event history (behavior.py). The controller keeps its recommendations and
scale events between calls, like the real one keeps them in memory; conditions follow
setConditionInList. simulate.py runs the 15 s sync loop against a traffic profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.models._k8s import ModelInputError, dig, to_epoch, to_rfc3339
from harness.models.hpa.behavior import (
    SCALE_DOWN_STABILIZED,
    TimestampedRecommendation,
    TimestampedScaleEvent,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    parse_behavior,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)
from harness.models.hpa.metrics import MetricInputs, compute_replicas_for_metrics, metric_source
from harness.models.hpa.metrics_client import parse_custom_metrics
from harness.models.hpa.replica_calculator import ReplicaCalculator, Tolerances

DEFAULT_METRIC = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
}
_READY_FOR_NEW_SCALE = ("ReadyForNewScale", "recommended size matches current size")


@dataclass
class HPADecision:
    desiredReplicas: int
    currentMetrics: list[dict]
    conditions: list[dict]
    reason: str
    rescale: bool
    currentReplicas: int = 0
    error: str | None = None
    proposals: list[dict] = field(default_factory=list)
    lastScaleTime: str | None = None  # RFC 3339, as status.lastScaleTime

    def to_dict(self) -> dict[str, Any]:
        return {
            "currentReplicas": self.currentReplicas,
            "desiredReplicas": self.desiredReplicas,
            "rescale": self.rescale,
            "reason": self.reason,
            "error": self.error,
            "currentMetrics": self.currentMetrics,
            "conditions": self.conditions,
            "lastScaleTime": self.lastScaleTime,
            "proposals": self.proposals,
        }


class HPAController:
    """One HPA's controller state: recommendations and scale events, like the real controller."""

    def __init__(
        self,
        hpa: dict,
        *,
        tolerance: float = 0.1,
        cpu_initialization_period_s: float = 300,
        initial_readiness_delay_s: float = 30,
        downscale_stabilization_s: float = 300,
    ) -> None:
        if not isinstance(hpa, dict) or not isinstance(hpa.get("spec"), dict):
            raise ModelInputError(
                "expected an autoscaling/v2 HorizontalPodAutoscaler with a spec", "hpa.spec"
            )
        self.hpa = hpa
        spec = hpa["spec"]
        max_r = spec.get("maxReplicas")
        if not isinstance(max_r, int) or max_r < 1:
            raise ModelInputError("maxReplicas must be an integer >= 1", "hpa.spec.maxReplicas")
        min_r = spec.get("minReplicas")
        if min_r is not None and (not isinstance(min_r, int) or min_r < 0 or min_r > max_r):
            raise ModelInputError(
                "minReplicas must be an integer in 0..maxReplicas", "hpa.spec.minReplicas"
            )
        self.max_replicas: int = max_r
        self.min_replicas: int = 1 if min_r is None else min_r
        self.metrics: list[dict] = list(spec.get("metrics") or [DEFAULT_METRIC])
        for i, m in enumerate(self.metrics):
            metric_source(m, i)
        self.downscale_stabilization = float(downscale_stabilization_s)
        self.behavior: dict | None = None
        self.tolerances = Tolerances(scale_down=float(tolerance), scale_up=float(tolerance))
        if spec.get("behavior") is not None:
            self.behavior, self.tolerances = parse_behavior(
                spec["behavior"], self.downscale_stabilization, float(tolerance)
            )
        self.calc = ReplicaCalculator(
            cpu_initialization_period_s=cpu_initialization_period_s,
            initial_readiness_delay_s=initial_readiness_delay_s,
        )
        self.recommendations: list[TimestampedRecommendation] = []
        self.scale_up_events: list[TimestampedScaleEvent] = []
        self.scale_down_events: list[TimestampedScaleEvent] = []
        self._conditions: dict[str, dict] = {}
        self._now = 0.0
        self.last_scale_time: float | None = None
        self._load_status(hpa.get("status"))

    def _load_status(self, status: Any) -> None:
        """A pasted HPA's status: its conditions keep their lastTransitionTime while unchanged
        (setConditionInList), and lastScaleTime carries over until the next rescale."""
        if not isinstance(status, dict):
            return
        if status.get("lastScaleTime") is not None:
            self.last_scale_time = to_epoch(status["lastScaleTime"], "hpa.status.lastScaleTime")
        for i, c in enumerate(status.get("conditions") or []):
            f = f"hpa.status.conditions[{i}]"
            if not isinstance(c, dict) or not c.get("type"):
                raise ModelInputError("a condition needs a type", f + ".type")
            ltt = c.get("lastTransitionTime")
            since = None if ltt is None else to_epoch(ltt, f"{f}.lastTransitionTime")
            self._conditions[str(c["type"])] = {
                "type": str(c["type"]),
                "status": str(c.get("status", "Unknown")),
                "reason": c.get("reason", ""),
                "message": c.get("message", ""),
                "lastTransitionTime": since,
            }

    # --- history ----------------------------------------------------------------------------
    def load_history(self, history: dict | None) -> None:
        """Seed recommendations / scale events (kubectl can't show them; users reconstruct them)."""
        if not history:
            return
        for key, target in (
            ("recommendations", None),
            ("scaleUpEvents", self.scale_up_events),
            ("scaleDownEvents", self.scale_down_events),
        ):
            for i, item in enumerate(history.get(key) or []):
                f = f"history.{key}[{i}]"
                if not isinstance(item, dict) or "timestamp" not in item:
                    raise ModelInputError("needs a timestamp", f + ".timestamp")
                ts = to_epoch(item["timestamp"], f + ".timestamp")
                if target is None:
                    rep = item.get("replicas", item.get("recommendation"))
                    if not isinstance(rep, int):
                        raise ModelInputError("replicas must be an integer", f + ".replicas")
                    self.recommendations.append(TimestampedRecommendation(rep, ts))
                else:
                    change = item.get("replicaChange")
                    if not isinstance(change, int) or change < 0:
                        raise ModelInputError(
                            "replicaChange must be a non-negative integer", f + ".replicaChange"
                        )
                    target.append(TimestampedScaleEvent(change, ts))

    def history(self) -> dict:
        return {
            "recommendations": [
                {"replicas": r.replicas, "timestamp": r.timestamp} for r in self.recommendations
            ],
            "scaleUpEvents": [
                {"replicaChange": e.change, "timestamp": e.timestamp} for e in self.scale_up_events
            ],
            "scaleDownEvents": [
                {"replicaChange": e.change, "timestamp": e.timestamp}
                for e in self.scale_down_events
            ],
        }

    # --- conditions ---------------------------------------------------------------------------
    def _set(self, ctype: str, status: bool, reason: str, message: str) -> None:
        st = "True" if status else "False"
        old = self._conditions.get(ctype)
        ltt = old["lastTransitionTime"] if old and old["status"] == st else self._now
        self._conditions[ctype] = {
            "type": ctype,
            "status": st,
            "reason": reason,
            "message": message,
            "lastTransitionTime": ltt,
        }

    def _condition_list(self) -> list[dict]:
        """status.conditions in the API's shape: list order as set, lastTransitionTime RFC 3339."""
        out = []
        for c in self._conditions.values():
            c = dict(c)
            ltt = c["lastTransitionTime"]
            c["lastTransitionTime"] = to_rfc3339(ltt) if ltt is not None else None
            out.append(c)
        return out

    # --- reconcile ------------------------------------------------------------------------------
    def reconcile(
        self,
        now: float | str,
        *,
        spec_replicas: int,
        status_replicas: int | None = None,
        pods: list[dict],
        pod_metrics: list[dict],
        custom_metrics: dict | None = None,
    ) -> HPADecision:
        now = to_epoch(now, "now")
        self._now = now
        current = int(spec_replicas)
        if status_replicas is None:
            status_replicas = (
                sum(
                    1
                    for p in pods
                    if dig(p, "metadata", "deletionTimestamp") is None
                    and dig(p, "status", "phase") not in ("Failed", "Succeeded")
                )
                if pods
                else current
            )
        self._set(
            "AbleToScale",
            True,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        if not self.recommendations:  # recordInitialRecommendation
            self.recommendations.append(TimestampedRecommendation(current, now))
        statuses: list[dict] = []
        proposals: list[dict] = []
        error: str | None = None
        reason = ""
        custom = parse_custom_metrics(custom_metrics, now)
        if current == 0 and self.min_replicas != 0:
            self._set(
                "ScalingActive",
                False,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
            return HPADecision(
                0,
                [],
                self._condition_list(),
                "scaling is disabled",
                False,
                current,
                lastScaleTime=self._last_scale_rfc3339(),
            )
        if current > self.max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", self.max_replicas
        elif current < self.min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", self.min_replicas
        else:
            inputs = MetricInputs(now, current, status_replicas, pods, pod_metrics, custom)
            proposal = compute_replicas_for_metrics(
                self.calc, self.tolerances, self.metrics, inputs
            )
            self._set("ScalingActive", *proposal.scaling_active)
            statuses, proposals, error = proposal.statuses, proposal.proposals, proposal.error
            if proposal.replicas == -1:
                return HPADecision(
                    current,
                    statuses,
                    self._condition_list(),
                    "failed to compute desired number of replicas based on listed metrics: "
                    f"{error}",
                    False,
                    current,
                    error,
                    proposals,
                    self._last_scale_rfc3339(),
                )
            desired = proposal.replicas
            if desired > current:
                reason = f"{proposal.metric_name} above target"
            elif desired < current:
                reason = "All metrics below target"
            if self.behavior is None:
                desired = self._normalize(current, desired)
            else:
                desired = self._normalize_with_behaviors(current, desired, now, self.behavior)
        rescale = desired != current
        if rescale:
            self._store_scale_event(current, desired, now)
            self._set(
                "AbleToScale",
                True,
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            self.last_scale_time = now
        return HPADecision(
            desired,
            statuses,
            self._condition_list(),
            reason,
            rescale,
            current,
            error,
            proposals,
            self._last_scale_rfc3339(),
        )

    def _last_scale_rfc3339(self) -> str | None:
        return to_rfc3339(self.last_scale_time) if self.last_scale_time is not None else None

    # --- horizontal.go's normalization steps, one at a time (what its unit tests call) ---------
    def stabilize_recommendation(self, desired: int, now: float) -> int:
        """stabilizeRecommendation: the max over the downscale window (no spec.behavior)."""
        self._now = to_epoch(now, "now")
        return stabilize_recommendation(
            self.recommendations, desired, self._now, self.downscale_stabilization
        )

    def stabilize_recommendation_with_behaviors(
        self, current: int, desired: int, now: float
    ) -> tuple[int, str, str]:
        """stabilizeRecommendationWithBehaviors -> (replicas, AbleToScale reason, message)."""
        behavior = self._require_behavior()
        return stabilize_recommendation_with_behaviors(
            self.recommendations, current, desired, to_epoch(now, "now"), behavior
        )

    def convert_desired_replicas_with_behavior_rate(
        self, current: int, desired: int, now: float
    ) -> tuple[int, str, str]:
        """convertDesiredReplicasWithBehaviorRate -> (replicas, ScalingLimited reason, message)."""
        behavior = self._require_behavior()
        return self._convert_with_behavior_rate(current, desired, to_epoch(now, "now"), behavior)

    def store_scale_event(self, prev: int, new: int, now: float) -> None:
        """storeScaleEvent (a no-op without spec.behavior)."""
        self._store_scale_event(prev, new, to_epoch(now, "now"))

    def _require_behavior(self) -> dict:
        if self.behavior is None:
            raise ModelInputError("needs spec.behavior ({} for the defaults)", "hpa.spec.behavior")
        return self.behavior

    # --- normalization --------------------------------------------------------------------------
    def _normalize(self, current: int, desired: int) -> int:
        """normalizeDesiredReplicas (legacy path, spec.behavior == nil)."""
        stabilized = stabilize_recommendation(
            self.recommendations, desired, self._now, self.downscale_stabilization
        )
        if stabilized != desired:
            self._set("AbleToScale", True, *SCALE_DOWN_STABILIZED)
        else:
            self._set("AbleToScale", True, *_READY_FOR_NEW_SCALE)
        out, cond, msg = convert_desired_replicas_with_rules(
            current, stabilized, self.min_replicas, self.max_replicas
        )
        self._set("ScalingLimited", out != stabilized, cond, msg)
        return out

    def _normalize_with_behaviors(
        self, current: int, desired: int, now: float, behavior: dict
    ) -> int:
        """normalizeDesiredReplicasWithBehaviors."""
        stabilized, reason, msg = stabilize_recommendation_with_behaviors(
            self.recommendations, current, desired, now, behavior
        )
        if stabilized != desired:
            self._set("AbleToScale", True, reason, msg)
        else:
            self._set("AbleToScale", True, *_READY_FOR_NEW_SCALE)
        out, reason, msg = self._convert_with_behavior_rate(current, stabilized, now, behavior)
        self._set("ScalingLimited", out != stabilized, reason, msg)
        return out

    def _convert_with_behavior_rate(
        self, current: int, desired: int, now: float, behavior: dict
    ) -> tuple[int, str, str]:
        return convert_desired_replicas_with_behavior_rate(
            current,
            desired,
            now,
            behavior,
            self.min_replicas,
            self.max_replicas,
            self.scale_up_events,
            self.scale_down_events,
        )

    def _store_scale_event(self, prev: int, new: int, now: float) -> None:
        """storeScaleEvent: only with spec.behavior."""
        if self.behavior is not None:
            store_scale_event(
                self.behavior, self.scale_up_events, self.scale_down_events, prev, new, now
            )
