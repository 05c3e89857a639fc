"""An HPA's metric specs and the replica proposal of each, a port of horizontal.go's
computeReplicasForMetrics / computeReplicasForMetric and the computeStatusFor*Metric functions:
which ReplicaCalculator call a Resource, ContainerResource, Pods, Object or External metric
makes, with which target, and the MetricStatus it reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.models._k8s import ModelInputError, dig, format_milli, to_milli
from harness.models.hpa.metrics_client import CustomMetrics, resource_pod_metrics
from harness.models.hpa.replica_calculator import MetricError, ReplicaCalculator, Tolerances

# metric type -> the key of its source in the MetricSpec
SOURCE_KEYS = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}
# metric type -> the ScalingActive reason when its metric cannot be computed
FAILED_REASONS = {
    "Resource": "FailedGetResourceMetric",
    "ContainerResource": "FailedGetContainerResourceMetric",
    "Pods": "FailedGetPodsMetric",
    "Object": "FailedGetObjectMetric",
    "External": "FailedGetExternalMetric",
}


def metric_source(spec: dict, i: int) -> tuple[str, dict]:
    """Validate spec.metrics[i] -> (source key, source) with a known target type."""
    mtype = spec.get("type")
    f = f"hpa.spec.metrics[{i}]"
    key = SOURCE_KEYS.get(str(mtype))
    if key is None:
        raise ModelInputError(
            f"unknown metric type {mtype!r}",
            f + ".type",
            "one of Resource, ContainerResource, Pods, Object, External",
        )
    source = spec.get(key)
    if not isinstance(source, dict):
        raise ModelInputError(f"missing '{key}' for a {mtype} metric", f"{f}.{key}")
    target = source.get("target")
    if not isinstance(target, dict) or target.get("type") not in (
        "Utilization",
        "AverageValue",
        "Value",
    ):
        raise ModelInputError(
            "target.type must be Utilization, AverageValue or Value", f"{f}.{key}.target.type"
        )
    return key, source


@dataclass
class MetricInputs:
    """What one sync reads: the scale, the pods, and the metrics APIs' answers."""

    now: float
    spec_replicas: int
    status_replicas: int
    pods: list[dict]
    pod_metrics: list[dict]
    custom: CustomMetrics


@dataclass
class MetricsProposal:
    """computeReplicasForMetrics' result, and the ScalingActive condition it sets."""

    # -1: no proposal may be used (every metric failed, or a failure blocks a scale-down)
    replicas: int
    metric_name: str
    statuses: list[dict]
    proposals: list[dict]
    error: str | None
    scaling_active: tuple[bool, str, str]  # (status, reason, message)


def compute_replicas_for_metrics(
    calc: ReplicaCalculator, tolerances: Tolerances, specs: list[dict], inputs: MetricInputs
) -> MetricsProposal:
    """The max over the metrics' proposals; a failed metric blocks a scale-down, not a scale-up."""
    replicas = 0
    metric_name = ""
    invalid = 0
    first_error: str | None = None
    invalid_cond: tuple[str, str] | None = None
    statuses: list[dict] = []
    proposals: list[dict] = []
    for i, spec in enumerate(specs):
        try:
            proposal, name, status = compute_replicas_for_metric(calc, tolerances, i, spec, inputs)
        except MetricError as err:
            invalid += 1
            if first_error is None:
                first_error = str(err)
                invalid_cond = (
                    FAILED_REASONS[spec["type"]],
                    f"the HPA was unable to compute the replica count: {err}",
                )
            statuses.append({"type": ""})
            proposals.append({"metric": i, "error": str(err)})
            continue
        statuses.append(status)
        proposals.append({"metric": i, "name": name, "replicas": proposal})
        if replicas == 0 or proposal > replicas:
            replicas, metric_name = proposal, name
    failed = (
        None
        if invalid == 0
        else (
            f"invalid metrics ({invalid} invalid out of {len(specs)}), "
            f"first error is: {first_error}"
        )
    )
    if invalid >= len(specs) or (invalid > 0 and replicas < inputs.spec_replicas):
        assert invalid_cond is not None
        return MetricsProposal(-1, "", statuses, proposals, failed, (False, *invalid_cond))
    active = (
        True,
        "ValidMetricFound",
        f"the HPA was able to successfully calculate a replica count from {metric_name}",
    )
    return MetricsProposal(replicas, metric_name, statuses, proposals, failed, active)


def compute_replicas_for_metric(
    calc: ReplicaCalculator, tol: Tolerances, i: int, spec: dict, inputs: MetricInputs
) -> tuple[int, str, dict]:
    """One metric -> (replicas, metric name for the reason, MetricStatus). Raises MetricError."""
    key, source = metric_source(spec, i)
    target = source["target"]
    f = f"hpa.spec.metrics[{i}].{key}.target"
    now, spec_replicas, status_replicas, pods = (
        inputs.now,
        inputs.spec_replicas,
        inputs.status_replicas,
        inputs.pods,
    )
    custom = inputs.custom
    if key in ("resource", "containerResource"):
        res = source.get("name")
        if not res:
            raise ModelInputError("resource name is required", f"hpa.spec.metrics[{i}].{key}.name")
        container = source.get("container", "") if key == "containerResource" else ""
        if key == "containerResource" and not container:
            raise ModelInputError(
                "container is required", f"hpa.spec.metrics[{i}].containerResource.container"
            )
        metrics = resource_pod_metrics(inputs.pod_metrics, res, container)
        # computeStatusForResourceMetricGeneric: a set averageValue wins, whatever the type says
        avg = target.get("averageValue")
        current: dict[str, Any]
        if avg is not None:
            r, usage = calc.get_raw_resource_replicas(
                spec_replicas, to_milli(avg, f + ".averageValue"), res, tol, pods, metrics, now
            )
            current = {"averageValue": format_milli(usage)}
            label = f"{res} resource"
        else:
            util_target = target.get("averageUtilization")
            if not isinstance(util_target, int) or util_target <= 0:
                raise ModelInputError(
                    "averageUtilization must be a positive integer",
                    f + ".averageUtilization",
                    "set averageUtilization (percent of request) or averageValue",
                )
            r, util, raw = calc.get_resource_replicas(
                spec_replicas, util_target, res, tol, pods, metrics, now, container
            )
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
            raise MetricError(
                f"unable to get metric {mname}: no metrics returned from custom metrics API"
            )
        r, usage = calc.get_metric_replicas(
            spec_replicas, to_milli(avg, f + ".averageValue"), mname, tol, pods, metrics, now
        )
        return (
            r,
            f"pods metric {mname}",
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": mname},
                    "current": {"averageValue": format_milli(usage)},
                },
            },
        )
    if key == "object":
        if target.get("value") is None and target.get("averageValue") is None:
            raise ModelInputError("must set either a target value or averageValue", f"{f}.value")
        usage_or_none = custom.object_value(mname, source.get("describedObject"))
        if usage_or_none is None:
            raise MetricError(
                f"unable to get metric {mname}: no metrics returned from custom metrics API"
            )
        usage = usage_or_none
        kind = dig(source, "describedObject", "kind", default="Object")
        obj_status = {
            "describedObject": source.get("describedObject") or {},
            "metric": {"name": mname},
        }
        # computeStatusForObjectMetric: the target type picks the field; a mismatch is an error
        if target["type"] == "Value" and target.get("value") is not None:
            r, u = calc.get_object_metric_replicas(
                spec_replicas, _target_milli(target, "value", f), usage, tol, pods
            )
            obj_status["current"] = {"value": format_milli(u)}
        elif target["type"] == "AverageValue" and target.get("averageValue") is not None:
            r, u = calc.get_object_per_pod_metric_replicas(
                status_replicas, _target_milli(target, "averageValue", f), usage, tol
            )
            obj_status["current"] = {"averageValue": format_milli(u)}
        else:
            raise MetricError(
                "invalid object metric source: "
                "neither a value target nor an average value target was set"
            )
        return r, f"{kind} metric {mname}", {"type": "Object", "object": obj_status}
    # external
    if target.get("value") is None and target.get("averageValue") is None:
        raise ModelInputError("must set either a target value or averageValue", f + ".value")
    values = custom.external.get(mname)
    if not values:
        raise MetricError(
            f"unable to get external metric {mname}: no metrics returned from external metrics API"
        )
    ext_status: dict[str, Any] = {"metric": {"name": mname}}
    # computeStatusForExternalMetric: a set averageValue wins whatever target.type says
    if target.get("averageValue") is not None:
        r, u = calc.get_external_per_pod_metric_replicas(
            status_replicas, _target_milli(target, "averageValue", f), values, tol
        )
        ext_status["current"] = {"averageValue": format_milli(u)}
    else:
        r, u = calc.get_external_metric_replicas(
            spec_replicas, _target_milli(target, "value", f), values, tol, pods
        )
        ext_status["current"] = {"value": format_milli(u)}
    return r, f"external metric {mname}", {"type": "External", "external": ext_status}


def _target_milli(target: dict, key: str, field: str) -> int:
    """A Value/AverageValue target in milli-units; the field is required for its target type."""
    value = target.get(key)
    if value is None:
        kind = "Value" if key == "value" else "AverageValue"
        raise ModelInputError(f"{key} is required for {kind} targets", f"{field}.{key}")
    return to_milli(value, f"{field}.{key}")
