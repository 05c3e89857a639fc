"""HorizontalPodAutoscaler (autoscaling/v2) controller model, a port of horizontal.go.

`HPAController.reconcile` is one pass of `reconcileAutoscaler`: per-metric proposals (see
hpa_calc), max over metrics with the partial-failure rule, min/max snapping, then the legacy
normalization (no `spec.behavior`) or stabilization windows + rate policies with scale-event
history. The controller keeps its recommendations and scale events between calls, like the real
one keeps them in memory. `simulate` runs the 15 s sync loop against a traffic profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.models._k8s import (
    ModelInputError,
    dig,
    format_milli,
    parse_duration,
    to_epoch,
    to_milli,
    to_rfc3339,
)
from harness.models.hpa_calc import (
    MetricError,
    PodMetric,
    ReplicaCalculator,
    Tolerances,
    parse_go_duration,
)
from harness.models.metrics_api import CustomMetrics, parse_custom_metrics

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
    "stabilizationWindowSeconds": None,  # controller flag --horizontal-pod-autoscaler-downscale-stabilization
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


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


@dataclass
class _Rec:
    replicas: int
    timestamp: float


@dataclass
class _Event:
    change: int
    timestamp: float
    outdated: bool = False


def _scaling_rules(raw: dict | None, default: dict, field_name: str) -> dict:
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
            raise ModelInputError(f"type must be Pods or Percent, got {p.get('type')!r}", f + ".type")
        if not isinstance(p.get("value"), int) or p["value"] <= 0:
            raise ModelInputError("value must be a positive integer", f + ".value")
        period = p.get("periodSeconds")
        if not isinstance(period, int) or not 0 < period <= 1800:
            raise ModelInputError("periodSeconds must be an integer in 1..1800", f + ".periodSeconds")
    if rules["selectPolicy"] not in ("Max", "Min", "Disabled"):
        raise ModelInputError("selectPolicy must be Max, Min or Disabled", field_name + ".selectPolicy")
    return rules


def get_replicas_change_per_period(period: float, events: list[_Event], now: float) -> int:
    """getReplicasChangePerPeriod: the replica change of the events newer than now - period."""
    cutoff = now - period
    return sum(e.change for e in events if e.timestamp > cutoff)


def scale_up_limit_with_rules(current: int, up: list[_Event], down: list[_Event], rules: dict, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    select = rules["selectPolicy"]
    if select == "Disabled":
        return current
    result: int | None = None
    for p in rules["policies"]:
        period = p["periodSeconds"]
        start = (current - get_replicas_change_per_period(period, up, now)
                 + get_replicas_change_per_period(period, down, now))
        if p["type"] == "Pods":
            proposed = start + p["value"]
        else:
            proposed = math.ceil(start * (1 + p["value"] / 100))
        if result is None:
            result = proposed
        else:
            result = min(result, proposed) if select == "Min" else max(result, proposed)
    return result if result is not None else -(2**31)


def scale_down_limit_with_rules(current: int, up: list[_Event], down: list[_Event], rules: dict, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors (Percent truncates)."""
    select = rules["selectPolicy"]
    if select == "Disabled":
        return current
    result: int | None = None
    for p in rules["policies"]:
        period = p["periodSeconds"]
        start = (current - get_replicas_change_per_period(period, up, now)
                 + get_replicas_change_per_period(period, down, now))
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
    current: int, desired: int, min_r: int, max_r: int, *,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
) -> tuple[int, str, str]:
    """Legacy (no behavior) clamp: scale-up limit max(factor*current, 4).

    The factor is 2; upstream's unit tests set it to 8."""
    scale_up_limit = int(max(scale_up_limit_factor * current, SCALE_UP_LIMIT_MINIMUM))
    if max_r > scale_up_limit:
        maximum, cond, msg = scale_up_limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum, cond, msg = max_r, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
    if desired < min_r:
        return min_r, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > maximum:
        return maximum, cond, msg
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def _metric_target(spec: dict, i: int) -> tuple[str, dict]:
    mtype = spec.get("type")
    f = f"hpa.spec.metrics[{i}]"
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}.get(str(mtype))
    if key is None:
        raise ModelInputError(
            f"unknown metric type {mtype!r}", f + ".type", "one of Resource, ContainerResource, Pods, Object, External"
        )
    source = spec.get(key)
    if not isinstance(source, dict):
        raise ModelInputError(f"missing '{key}' for a {mtype} metric", f"{f}.{key}")
    target = source.get("target")
    if not isinstance(target, dict) or target.get("type") not in ("Utilization", "AverageValue", "Value"):
        raise ModelInputError("target.type must be Utilization, AverageValue or Value", f"{f}.{key}.target.type")
    return key, source


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
            raise ModelInputError("expected an autoscaling/v2 HorizontalPodAutoscaler with a spec", "hpa.spec")
        self.hpa = hpa
        spec = hpa["spec"]
        max_r = spec.get("maxReplicas")
        if not isinstance(max_r, int) or max_r < 1:
            raise ModelInputError("maxReplicas must be an integer >= 1", "hpa.spec.maxReplicas")
        min_r = spec.get("minReplicas")
        if min_r is not None and (not isinstance(min_r, int) or min_r < 0 or min_r > max_r):
            raise ModelInputError("minReplicas must be an integer in 0..maxReplicas", "hpa.spec.minReplicas")
        self.max_replicas: int = max_r
        self.min_replicas: int = 1 if min_r is None else min_r
        self.metrics: list[dict] = list(spec.get("metrics") or [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
        ])
        for i, m in enumerate(self.metrics):
            _metric_target(m, i)
        self.downscale_stabilization = float(downscale_stabilization_s)
        behavior = spec.get("behavior")
        self.behavior: dict | None = None
        tol_up = tol_down = float(tolerance)
        if behavior is not None:
            up = _scaling_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP, "hpa.spec.behavior.scaleUp")
            down = _scaling_rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, "hpa.spec.behavior.scaleDown")
            if down["stabilizationWindowSeconds"] is None:
                down["stabilizationWindowSeconds"] = self.downscale_stabilization
            for name, rules in (("scaleUp", up), ("scaleDown", down)):
                w = rules["stabilizationWindowSeconds"]
                if not isinstance(w, (int, float)) or not 0 <= w <= 3600:
                    raise ModelInputError("must be 0..3600", f"hpa.spec.behavior.{name}.stabilizationWindowSeconds")
            if up.get("tolerance") is not None:
                tol_up = to_milli(up["tolerance"], "hpa.spec.behavior.scaleUp.tolerance") / 1000
            if down.get("tolerance") is not None:
                tol_down = to_milli(down["tolerance"], "hpa.spec.behavior.scaleDown.tolerance") / 1000
            self.behavior = {"scaleUp": up, "scaleDown": down}
        self.tolerances = Tolerances(scale_down=tol_down, scale_up=tol_up)
        self.calc = ReplicaCalculator(
            cpu_initialization_period_s=cpu_initialization_period_s,
            initial_readiness_delay_s=initial_readiness_delay_s,
        )
        self.recommendations: list[_Rec] = []
        self.scale_up_events: list[_Event] = []
        self.scale_down_events: list[_Event] = []
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
                "type": str(c["type"]), "status": str(c.get("status", "Unknown")),
                "reason": c.get("reason", ""), "message": c.get("message", ""),
                "lastTransitionTime": since,
            }

    # --- history ----------------------------------------------------------------------------
    def load_history(self, history: dict | None) -> None:
        """Seed recommendations / scale events (kubectl can't show them; users reconstruct them)."""
        if not history:
            return
        for key, target in (("recommendations", None), ("scaleUpEvents", self.scale_up_events),
                            ("scaleDownEvents", self.scale_down_events)):
            for i, item in enumerate(history.get(key) or []):
                f = f"history.{key}[{i}]"
                if not isinstance(item, dict) or "timestamp" not in item:
                    raise ModelInputError("needs a timestamp", f + ".timestamp")
                ts = to_epoch(item["timestamp"], f + ".timestamp")
                if target is None:
                    rep = item.get("replicas", item.get("recommendation"))
                    if not isinstance(rep, int):
                        raise ModelInputError("replicas must be an integer", f + ".replicas")
                    self.recommendations.append(_Rec(rep, ts))
                else:
                    change = item.get("replicaChange")
                    if not isinstance(change, int) or change < 0:
                        raise ModelInputError("replicaChange must be a non-negative integer", f + ".replicaChange")
                    target.append(_Event(change, ts))

    def history(self) -> dict:
        return {
            "recommendations": [{"replicas": r.replicas, "timestamp": r.timestamp} for r in self.recommendations],
            "scaleUpEvents": [{"replicaChange": e.change, "timestamp": e.timestamp} for e in self.scale_up_events],
            "scaleDownEvents": [{"replicaChange": e.change, "timestamp": e.timestamp} for e in self.scale_down_events],
        }

    # --- conditions ---------------------------------------------------------------------------
    def _set(self, ctype: str, status: bool, reason: str, message: str) -> None:
        st = "True" if status else "False"
        old = self._conditions.get(ctype)
        ltt = old["lastTransitionTime"] if old and old["status"] == st else self._now
        self._conditions[ctype] = {"type": ctype, "status": st, "reason": reason, "message": message,
                                   "lastTransitionTime": ltt}

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
        now: float,
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
            status_replicas = sum(
                1 for p in pods
                if dig(p, "metadata", "deletionTimestamp") is None
                and dig(p, "status", "phase") not in ("Failed", "Succeeded")
            ) if pods else current
        self._set("AbleToScale", True, "SucceededGetScale", "the HPA controller was able to get the target's current scale")
        if not self.recommendations:  # recordInitialRecommendation
            self.recommendations.append(_Rec(current, now))
        statuses: list[dict] = []
        proposals: list[dict] = []
        error: str | None = None
        reason = ""
        custom = parse_custom_metrics(custom_metrics, now)
        if current == 0 and self.min_replicas != 0:
            self._set("ScalingActive", False, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
            return HPADecision(0, [], self._condition_list(), "scaling is disabled", False, current,
                               lastScaleTime=self._last_scale_rfc3339())
        if current > self.max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", self.max_replicas
        elif current < self.min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", self.min_replicas
        else:
            metric_desired, metric_name, statuses, proposals, error = self._compute_replicas_for_metrics(
                now, current, status_replicas, pods, pod_metrics, custom
            )
            if metric_desired == -1:
                return HPADecision(current, statuses, self._condition_list(),
                                   f"failed to compute desired number of replicas based on listed metrics: {error}",
                                   False, current, error, proposals, self._last_scale_rfc3339())
            desired = metric_desired
            if desired > current:
                reason = f"{metric_name} above target"
            elif desired < current:
                reason = "All metrics below target"
            if self.behavior is None:
                desired = self._normalize(current, desired)
            else:
                desired = self._normalize_with_behaviors(current, desired, now)
        rescale = desired != current
        if rescale:
            self._store_scale_event(current, desired, now)
            self._set("AbleToScale", True, "SucceededRescale", f"the HPA controller was able to update the target scale to {desired}")
            self.last_scale_time = now
        return HPADecision(desired, statuses, self._condition_list(), reason, rescale, current,
                           error, proposals, self._last_scale_rfc3339())

    def _last_scale_rfc3339(self) -> str | None:
        return to_rfc3339(self.last_scale_time) if self.last_scale_time is not None else None

    def _compute_replicas_for_metrics(
        self, now: float, spec_replicas: int, status_replicas: int, pods: list[dict],
        pod_metrics: list[dict], custom: CustomMetrics,
    ) -> tuple[int, str, list[dict], list[dict], str | None]:
        replicas = 0
        metric_name = ""
        invalid = 0
        first_error: str | None = None
        invalid_cond: tuple[str, str] | None = None
        statuses: list[dict] = []
        proposals: list[dict] = []
        for i, spec in enumerate(self.metrics):
            try:
                proposal, name, status = self._compute_metric(i, spec, now, spec_replicas, status_replicas, pods, pod_metrics, custom)
            except MetricError as err:
                reason = {"Resource": "FailedGetResourceMetric", "ContainerResource": "FailedGetContainerResourceMetric",
                          "Pods": "FailedGetPodsMetric", "Object": "FailedGetObjectMetric",
                          "External": "FailedGetExternalMetric"}[spec["type"]]
                invalid += 1
                if first_error is None:
                    first_error = str(err)
                    invalid_cond = (reason, f"the HPA was unable to compute the replica count: {err}")
                statuses.append({"type": ""})
                proposals.append({"metric": i, "error": str(err)})
                continue
            statuses.append(status)
            proposals.append({"metric": i, "name": name, "replicas": proposal})
            if replicas == 0 or proposal > replicas:
                replicas, metric_name = proposal, name
        if invalid >= len(self.metrics) or (invalid > 0 and replicas < spec_replicas):
            assert invalid_cond is not None
            self._set("ScalingActive", False, *invalid_cond)
            return -1, "", statuses, proposals, f"invalid metrics ({invalid} invalid out of {len(self.metrics)}), first error is: {first_error}"
        self._set("ScalingActive", True, "ValidMetricFound", f"the HPA was able to successfully calculate a replica count from {metric_name}")
        partial = None if invalid == 0 else f"invalid metrics ({invalid} invalid out of {len(self.metrics)}), first error is: {first_error}"
        return replicas, metric_name, statuses, proposals, partial

    def _compute_metric(
        self, i: int, spec: dict, now: float, spec_replicas: int, status_replicas: int,
        pods: list[dict], pod_metrics: list[dict], custom: CustomMetrics,
    ) -> tuple[int, str, dict]:
        key, source = _metric_target(spec, i)
        target = source["target"]
        f = f"hpa.spec.metrics[{i}].{key}.target"
        tol = self.tolerances
        if key in ("resource", "containerResource"):
            res = source.get("name")
            if not res:
                raise ModelInputError("resource name is required", f"hpa.spec.metrics[{i}].{key}.name")
            container = source.get("container", "") if key == "containerResource" else ""
            if key == "containerResource" and not container:
                raise ModelInputError("container is required", f"hpa.spec.metrics[{i}].containerResource.container")
            metrics = resource_pod_metrics(pod_metrics, res, container)
            # computeStatusForResourceMetricGeneric: a set averageValue wins, whatever the type says
            avg = target.get("averageValue")
            current: dict[str, Any]
            if avg is not None:
                r, usage = self.calc.get_raw_resource_replicas(
                    spec_replicas, to_milli(avg, f + ".averageValue"), res, tol, pods, metrics, now)
                current = {"averageValue": format_milli(usage)}
                label = f"{res} resource"
            else:
                util_target = target.get("averageUtilization")
                if not isinstance(util_target, int) or util_target <= 0:
                    raise ModelInputError(
                        "averageUtilization must be a positive integer", f + ".averageUtilization",
                        "set averageUtilization (percent of request) or averageValue")
                r, util, raw = self.calc.get_resource_replicas(spec_replicas, util_target, res, tol, pods, metrics, now, container)
                current = {"averageUtilization": util, "averageValue": format_milli(raw)}
                kind = "container resource" if container else "resource"
                label = f"{res} {kind} utilization (percentage of request)"
            status_key = "containerResource" if container else "resource"
            body: dict[str, Any] = {"name": res, "current": current}
            if container:
                body["container"] = container
            return r, label, {"type": spec["type"], status_key: body}
        mname = dig(source, "metric", "name")
        if not mname:
            raise ModelInputError("metric.name is required", f"hpa.spec.metrics[{i}].{key}.metric.name")
        if key == "pods":
            avg = target.get("averageValue")
            if avg is None:
                raise ModelInputError("Pods metrics need target.averageValue", f + ".averageValue")
            metrics = custom.pods.get(mname) or {}
            if not metrics:
                raise MetricError(f"unable to get metric {mname}: no metrics returned from custom metrics API")
            r, usage = self.calc.get_metric_replicas(spec_replicas, to_milli(avg, f + ".averageValue"), mname, tol, pods, metrics, now)
            return r, f"pods metric {mname}", {"type": "Pods", "pods": {"metric": {"name": mname}, "current": {"averageValue": format_milli(usage)}}}
        if key == "object":
            if target.get("value") is None and target.get("averageValue") is None:
                raise ModelInputError("must set either a target value or averageValue",
                                      f"{f}.value")
            usage_or_none = custom.object_value(mname, source.get("describedObject"))
            if usage_or_none is None:
                raise MetricError(f"unable to get metric {mname}: no metrics returned from custom metrics API")
            usage = usage_or_none
            kind = dig(source, "describedObject", "kind", default="Object")
            obj_status = {"describedObject": source.get("describedObject") or {}, "metric": {"name": mname}}
            # computeStatusForObjectMetric: the target type picks the field; a mismatch is an error
            if target["type"] == "Value" and target.get("value") is not None:
                r, u = self.calc.get_object_metric_replicas(spec_replicas, _target_milli(target, "value", f), usage, tol, pods)
                obj_status["current"] = {"value": format_milli(u)}
            elif target["type"] == "AverageValue" and target.get("averageValue") is not None:
                r, u = self.calc.get_object_per_pod_metric_replicas(status_replicas, _target_milli(target, "averageValue", f), usage, tol)
                obj_status["current"] = {"averageValue": format_milli(u)}
            else:
                raise MetricError("invalid object metric source: "
                                  "neither a value target nor an average value target was set")
            return r, f"{kind} metric {mname}", {"type": "Object", "object": obj_status}
        # external
        if target.get("value") is None and target.get("averageValue") is None:
            raise ModelInputError("must set either a target value or averageValue", f + ".value")
        values = custom.external.get(mname)
        if not values:
            raise MetricError(f"unable to get external metric {mname}: no metrics returned from external metrics API")
        ext_status: dict[str, Any] = {"metric": {"name": mname}}
        # computeStatusForExternalMetric: a set averageValue wins whatever target.type says
        if target.get("averageValue") is not None:
            r, u = self.calc.get_external_per_pod_metric_replicas(status_replicas, _target_milli(target, "averageValue", f), values, tol)
            ext_status["current"] = {"averageValue": format_milli(u)}
        else:
            r, u = self.calc.get_external_metric_replicas(
                spec_replicas, _target_milli(target, "value", f), values, tol, pods)
            ext_status["current"] = {"value": format_milli(u)}
        return r, f"external metric {mname}", {"type": "External", "external": ext_status}

    # --- horizontal.go's normalization steps, one at a time (what its unit tests call) ---------
    def stabilize_recommendation(self, desired: int, now: float) -> int:
        """stabilizeRecommendation: the max over the downscale window (no spec.behavior)."""
        self._now = to_epoch(now, "now")
        return self._stabilize(desired)

    def stabilize_recommendation_with_behaviors(
        self, current: int, desired: int, now: float
    ) -> tuple[int, str, str]:
        """stabilizeRecommendationWithBehaviors -> (replicas, AbleToScale reason, message)."""
        up, down = self._require_behavior()
        return self._stabilize_with_behaviors(current, desired, to_epoch(now, "now"), up, down)

    def convert_desired_replicas_with_behavior_rate(
        self, current: int, desired: int, now: float
    ) -> tuple[int, str, str]:
        """convertDesiredReplicasWithBehaviorRate -> (replicas, ScalingLimited reason, message)."""
        up, down = self._require_behavior()
        return self._convert_with_behavior_rate(current, desired, to_epoch(now, "now"), up, down)

    def store_scale_event(self, prev: int, new: int, now: float) -> None:
        """storeScaleEvent (a no-op without spec.behavior)."""
        self._store_scale_event(prev, new, to_epoch(now, "now"))

    def _require_behavior(self) -> tuple[dict, dict]:
        if self.behavior is None:
            raise ModelInputError("needs spec.behavior ({} for the defaults)", "hpa.spec.behavior")
        return self.behavior["scaleUp"], self.behavior["scaleDown"]

    # --- normalization --------------------------------------------------------------------------
    def _normalize(self, current: int, desired: int) -> int:
        """normalizeDesiredReplicas (legacy path, spec.behavior == nil)."""
        stabilized = self._stabilize(desired)
        if stabilized != desired:
            self._set("AbleToScale", True, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
        else:
            self._set("AbleToScale", True, "ReadyForNewScale", "recommended size matches current size")
        out, cond, msg = convert_desired_replicas_with_rules(current, stabilized, self.min_replicas, self.max_replicas)
        self._set("ScalingLimited", out != stabilized, cond, msg)
        return out

    def _stabilize(self, desired: int) -> int:
        cutoff = self._now - self.downscale_stabilization
        best = desired
        old_idx = -1
        for i, rec in enumerate(self.recommendations):
            if rec.timestamp < cutoff:
                old_idx = i
            elif rec.replicas > best:
                best = rec.replicas
        new = _Rec(desired, self._now)
        if old_idx >= 0:
            self.recommendations[old_idx] = new
        else:
            self.recommendations.append(new)
        return best

    def _normalize_with_behaviors(self, current: int, desired: int, now: float) -> int:
        assert self.behavior is not None
        up, down = self.behavior["scaleUp"], self.behavior["scaleDown"]
        stabilized, reason, msg = self._stabilize_with_behaviors(current, desired, now, up, down)
        if stabilized != desired:
            self._set("AbleToScale", True, reason, msg)
        else:
            self._set("AbleToScale", True, "ReadyForNewScale", "recommended size matches current size")
        out, reason, msg = self._convert_with_behavior_rate(current, stabilized, now, up, down)
        self._set("ScalingLimited", out != stabilized, reason, msg)
        return out

    def _stabilize_with_behaviors(self, current: int, desired: int, now: float, up: dict, down: dict) -> tuple[int, str, str]:
        up_cutoff = now - float(up["stabilizationWindowSeconds"])
        down_cutoff = now - float(down["stabilizationWindowSeconds"])
        up_rec = down_rec = desired
        old_idx = -1
        for i, rec in enumerate(self.recommendations):
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
        new = _Rec(desired, now)
        if old_idx >= 0:
            self.recommendations[old_idx] = new
        else:
            self.recommendations.append(new)
        if desired >= current:
            return rec_out, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
        return rec_out, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"

    def _convert_with_behavior_rate(self, current: int, desired: int, now: float, up: dict, down: dict) -> tuple[int, str, str]:
        if desired > current:
            limit = max(scale_up_limit_with_rules(current, self.scale_up_events, self.scale_down_events, up, now), current)
            if self.max_replicas > limit:
                maximum, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
            else:
                maximum, reason, msg = self.max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
            if desired > maximum:
                return maximum, reason, msg
        elif desired < current:
            limit = min(scale_down_limit_with_rules(current, self.scale_up_events, self.scale_down_events, down, now), current)
            if self.min_replicas < limit:
                minimum, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
            else:
                minimum, reason, msg = self.min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
            if desired < minimum:
                return minimum, reason, msg
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    def _store_scale_event(self, prev: int, new: int, now: float) -> None:
        """storeScaleEvent: only with spec.behavior; reuses an outdated slot."""
        if self.behavior is None:
            return
        if new > prev:
            events, rules, change = self.scale_up_events, self.behavior["scaleUp"], new - prev
        else:
            events, rules, change = self.scale_down_events, self.behavior["scaleDown"], prev - new
        longest = max((p["periodSeconds"] for p in rules["policies"]), default=0)
        cutoff = now - longest
        idx = -1
        for i, e in enumerate(events):
            if e.timestamp < cutoff:
                e.outdated = True
            if e.outdated:
                idx = i
        ev = _Event(change, now)
        if idx >= 0:
            events[idx] = ev
        else:
            events.append(ev)


def resource_pod_metrics(pod_metrics: list[dict], resource: str, container: str = "") -> dict[str, PodMetric]:
    """metrics.k8s.io PodMetrics -> per-pod milli usage (sum of containers, or one container).

    A pod with a container lacking the resource is dropped (it becomes a "missing" pod)."""
    out: dict[str, PodMetric] = {}
    for i, pm in enumerate(pod_metrics or []):
        f = f"podMetrics[{i}]"
        name = (pm.get("metadata") or {}).get("name")
        if not name:
            raise ModelInputError("metadata.name is required", f + ".metadata.name")
        ts = pm.get("timestamp")
        timestamp = to_epoch(ts, f + ".timestamp") if ts is not None else 0.0
        window = parse_go_duration(pm.get("window", "15s"), f + ".window")
        total = 0
        found_container = False
        complete = True
        for j, c in enumerate(pm.get("containers") or []):
            if container and c.get("name") != container:
                continue
            found_container = True
            usage = (c.get("usage") or {}).get(resource)
            if usage is None:
                complete = False
                break
            total += to_milli(usage, f"{f}.containers[{j}].usage.{resource}")
        if complete and (found_container or not container) and pm.get("containers"):
            out[str(name)] = PodMetric(total, timestamp, window)
    return out


# kube-controller-manager's HPA settings: model keyword -> (input key, flag, config field, default)
CONTROLLER_SETTINGS: dict[str, tuple[str, str, str, float]] = {
    "tolerance": ("tolerance", "horizontal-pod-autoscaler-tolerance",
                  "HorizontalPodAutoscalerTolerance", 0.1),
    "sync_period_s": ("syncPeriod", "horizontal-pod-autoscaler-sync-period",
                      "HorizontalPodAutoscalerSyncPeriod", 15.0),
    "downscale_stabilization_s": ("downscaleStabilization",
                                  "horizontal-pod-autoscaler-downscale-stabilization",
                                  "HorizontalPodAutoscalerDownscaleStabilizationWindow", 300.0),
    "cpu_initialization_period_s": ("cpuInitializationPeriod",
                                    "horizontal-pod-autoscaler-cpu-initialization-period",
                                    "HorizontalPodAutoscalerCPUInitializationPeriod", 300.0),
    "initial_readiness_delay_s": ("initialReadinessDelay",
                                  "horizontal-pod-autoscaler-initial-readiness-delay",
                                  "HorizontalPodAutoscalerInitialReadinessDelay", 30.0),
}
_IGNORED_SETTINGS = {"concurrent-horizontal-pod-autoscaler-syncs",
                     "ConcurrentHorizontalPodAutoscalerSyncs",
                     "concurrentHorizontalPodAutoscalerSyncs"}


def controller_options(cfg: Any, field_name: str = "controller") -> dict[str, float]:
    """The controller's HPA settings as copied from a cluster -> keyword arguments (seconds).

    `cfg` is a mapping keyed by the model's names (`syncPeriod`, `downscaleStabilization`, ...),
    the kube-controller-manager flag names (`horizontal-pod-autoscaler-sync-period`, leading
    dashes optional) or the KubeControllerManagerConfiguration fields (an `HPAController` block
    or its `HorizontalPodAutoscaler*` keys); or the flags themselves (`["--horizontal-pod-
    autoscaler-sync-period=15s", ...]`, other flags ignored). Durations are Go durations
    (`5m0s`) or seconds; the tolerance a number. Unset settings take the production defaults."""
    by_name = {}
    for kw, names in CONTROLLER_SETTINGS.items():
        for n in names[:3]:
            by_name[n] = kw
    out = {kw: names[3] for kw, names in CONTROLLER_SETTINGS.items()}
    if cfg is None:
        return out
    items: list[tuple[str, Any, str]] = []
    if isinstance(cfg, str):
        cfg = cfg.split()
    if isinstance(cfg, list):
        for i, flag in enumerate(cfg):
            f = f"{field_name}[{i}]"
            if not isinstance(flag, str):
                raise ModelInputError(
                    "expected a flag string such as --horizontal-pod-autoscaler-sync-period=15s", f)
            name, eq, value = flag.lstrip("-").partition("=")
            if name not in by_name:
                continue  # the rest of a kube-controller-manager command line
            if not eq:
                raise ModelInputError(f"flag --{name} has no value", f, f"write --{name}=VALUE")
            items.append((name, value, f))
    elif isinstance(cfg, dict):
        if isinstance(cfg.get("HPAController"), dict):  # a whole KubeControllerManagerConfiguration
            cfg = cfg["HPAController"]
            field_name += ".HPAController"
        for key, value in cfg.items():
            name = str(key).lstrip("-")
            f = f"{field_name}.{key}"
            if name in _IGNORED_SETTINGS:
                continue
            if name not in by_name:
                known = ", ".join(names[0] for names in CONTROLLER_SETTINGS.values())
                raise ModelInputError(f"unknown controller setting {key!r}", f,
                                      f"one of {known} (or the kube-controller-manager flag names)")
            items.append((name, value, f))
    else:
        raise ModelInputError("expected a mapping of settings or a list of flags", field_name)
    for name, value, f in items:
        kw = by_name[name]
        if kw == "tolerance":
            try:
                tol = float(value) if not isinstance(value, bool) else -1.0
            except (TypeError, ValueError):
                tol = -1.0
            if not tol >= 0 or tol == float("inf"):
                raise ModelInputError(f"tolerance must be a number >= 0, got {value!r}", f,
                                      "e.g. 0.1 for 10 %")
            out[kw] = tol
        else:
            out[kw] = parse_duration(value, f)
    if out["sync_period_s"] <= 0:
        raise ModelInputError("the sync period must be > 0", field_name, "e.g. 15s")
    return out


# Re-exported for callers of the public API.
from harness.models.hpa_sim import SimResult, simulate  # noqa: E402

__all__ = [
    "CONTROLLER_SETTINGS",
    "HPAController",
    "HPADecision",
    "MetricError",
    "SimResult",
    "Tolerances",
    "controller_options",
    "convert_desired_replicas_with_rules",
    "get_replicas_change_per_period",
    "resource_pod_metrics",
    "simulate",
]


def _target_milli(target: dict, key: str, field: str) -> int:
    """A Value/AverageValue target in milli-units; the field is required for its target type."""
    value = target.get(key)
    if value is None:
        kind = "Value" if key == "value" else "AverageValue"
        raise ModelInputError(f"{key} is required for {kind} targets", f"{field}.{key}")
    return to_milli(value, f"{field}.{key}")
