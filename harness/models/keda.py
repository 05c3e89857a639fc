"""KEDA's ScaledObject (keda.sh/v1alpha1): the autoscaling/v2 HPA KEDA generates for it, and
KEDA's own scale loop (activation to and from zero or idle, cooldown).

Read against kedacore/keda:

* apis/keda/v1alpha1/scaledobject_types.go: the spec fields and their bounds;
  GetHPAMinReplicas (minReplicaCount if > 0, else 1), GetHPAMaxReplicas (default 100);
  the CEL rule minReplicaCount <= maxReplicaCount; ValidateTriggers/CheckReplicaCountBoundsAreValid
  (idleReplicaCount < minReplicaCount).
* apis/keda/v1alpha1/withtriggers_types.go: pollingInterval default 30 s.
* controllers/keda/hpa.go: the generated HPA (name `keda-hpa-<name>` unless
  advanced.horizontalPodAutoscalerConfig.name; labels; the ScaledObject's annotations; behavior
  passed through; External metrics selected by `scaledobject.keda.sh/name`; metrics sorted by
  type).
* pkg/scalers/prometheus_scaler.go, scaler.go: the External metric `s<index>-prometheus`, target
  AverageValue (or the trigger's metricType Value) = threshold; active when the query's value >
  activationThreshold (default 0); an empty result is 0 with ignoreNullValues (default true).
* pkg/scalers/cpu_memory_scaler.go: cpu/memory triggers are Resource (or ContainerResource)
  metrics; metricType Utilization or AverageValue is required.
* pkg/scaling/executor/scale_scaledobjects.go (RequestScale): every pollingInterval, active and at
  0 (or below min with idleReplicaCount) -> minReplicaCount (at least 1); inactive above 0 with
  minReplicaCount 0 (or above idleReplicaCount) -> idle/min once lastActiveTime + cooldownPeriod
  (initialCooldownPeriod, default 0, from creation while never active) has passed; inactive below
  minReplicaCount (no idleReplicaCount) -> minReplicaCount. Between 1 and max the HPA scales.

Not modelled: fallback (the metrics server serving fallback replicas after failureThreshold
errors), scalingModifiers, paused annotations, other scaler types (refused with a fix).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.models._k8s import ModelInputError
from harness.models.promql_selector import parse_query

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"
OWNER_LABEL = "scaledobject.keda.sh/name"  # kedav1alpha1.ScaledObjectOwnerAnnotation
DEFAULT_POLLING_INTERVAL_S = 30
DEFAULT_COOLDOWN_PERIOD_S = 300
DEFAULT_INITIAL_COOLDOWN_PERIOD_S = 0
DEFAULT_HPA_MIN_REPLICAS = 1
DEFAULT_HPA_MAX_REPLICAS = 100
RESOURCE_TRIGGERS = ("cpu", "memory")
MODELLED_TRIGGERS = ("prometheus", *RESOURCE_TRIGGERS)


class _Spec(BaseModel):
    # the CRD's structural schema: unknown fields are rejected by a strict apply
    model_config = ConfigDict(extra="forbid")


class ScaleTarget(_Spec):
    name: str = Field(min_length=1)
    kind: str = "Deployment"
    apiVersion: str = "apps/v1"
    envSourceContainerName: str | None = None


class HorizontalPodAutoscalerConfig(_Spec):
    name: str | None = None
    behavior: dict[str, Any] | None = None


class AdvancedConfig(_Spec):
    horizontalPodAutoscalerConfig: HorizontalPodAutoscalerConfig | None = None
    restoreToOriginalReplicaCount: bool = False
    scalingModifiers: dict[str, Any] | None = None


class ScaleTrigger(_Spec):
    type: str = Field(min_length=1)
    name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    metricType: Literal["AverageValue", "Value", "Utilization"] | None = None
    useCachedMetrics: bool = False
    authenticationRef: dict[str, Any] | None = None


class Fallback(_Spec):
    failureThreshold: int = Field(ge=0)
    replicas: int = Field(ge=0)
    behavior: str | None = None


class ScaledObjectSpec(_Spec):
    scaleTargetRef: ScaleTarget
    pollingInterval: int | None = Field(default=None, ge=1)
    initialCooldownPeriod: int | None = Field(default=None, ge=0)
    cooldownPeriod: int | None = Field(default=None, ge=0)
    idleReplicaCount: int | None = Field(default=None, ge=0)
    minReplicaCount: int | None = Field(default=None, ge=0)
    maxReplicaCount: int | None = Field(default=None, ge=1)
    advanced: AdvancedConfig | None = None
    triggers: list[ScaleTrigger] = Field(min_length=1)
    fallback: Fallback | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ScaledObjectSpec:
        lo = self.minReplicaCount or 0
        hi = self.maxReplicaCount if self.maxReplicaCount is not None else DEFAULT_HPA_MAX_REPLICAS
        if lo > hi:
            raise ValueError(f"minReplicaCount={lo} must be less than maxReplicaCount={hi}")
        if self.idleReplicaCount is not None and self.idleReplicaCount >= lo:
            raise ValueError(
                f"IdleReplicaCount={self.idleReplicaCount} must be less than MinReplicaCount={lo}"
            )
        if lo == 0 and all(t.type in RESOURCE_TRIGGERS for t in self.triggers):
            raise ValueError(
                "scaledobject has only cpu/memory triggers AND minReplica is 0 "
                "(scale to zero doesn't work in this case)"
            )
        return self

    # --- defaults, as KEDA applies them -------------------------------------------------------
    @property
    def polling_interval_s(self) -> int:
        return self.pollingInterval or DEFAULT_POLLING_INTERVAL_S

    @property
    def cooldown_period_s(self) -> int:
        return DEFAULT_COOLDOWN_PERIOD_S if self.cooldownPeriod is None else self.cooldownPeriod

    @property
    def initial_cooldown_period_s(self) -> int:
        v = self.initialCooldownPeriod
        return DEFAULT_INITIAL_COOLDOWN_PERIOD_S if v is None else v

    @property
    def min_replica_count(self) -> int:
        """The executor's minReplicas (0 when unset): what the workload may go down to."""
        return self.minReplicaCount or 0

    @property
    def hpa_min_replicas(self) -> int:
        """GetHPAMinReplicas: minReplicaCount when > 0, else 1 (an HPA cannot go to 0)."""
        m = self.minReplicaCount
        return m if m is not None and m > 0 else DEFAULT_HPA_MIN_REPLICAS

    @property
    def hpa_max_replicas(self) -> int:
        m = self.maxReplicaCount
        return m if m is not None else DEFAULT_HPA_MAX_REPLICAS

    @property
    def scales_to_zero_or_idle(self) -> bool:
        return self.idleReplicaCount is not None or self.min_replica_count == 0


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ScaledObject(BaseModel):
    model_config = ConfigDict(extra="allow")  # status and the like are not ours to check
    apiVersion: Literal["keda.sh/v1alpha1"]
    kind: Literal["ScaledObject"]
    metadata: ObjectMeta
    spec: ScaledObjectSpec

    @property
    def name(self) -> str:
        return self.metadata.name


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse(obj: dict[str, Any]) -> ScaledObject:
    """A ScaledObject dict -> the model; a bad one is a ModelInputError naming the field."""
    try:
        so = ScaledObject.model_validate(obj)
    except ValidationError as err:
        e = err.errors()[0]
        where = _loc(tuple(e["loc"])) or "spec"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field {e['loc'][-1]!r}"
        raise ModelInputError(
            f"ScaledObject/{(obj.get('metadata') or {}).get('name', '?')}: {msg}",
            where,
            "correct it per KEDA's ScaledObject spec (keda.sh/v1alpha1, "
            "https://keda.sh/docs/latest/reference/scaledobject-spec/)",
        ) from None
    for i, t in enumerate(so.spec.triggers):
        _check_trigger(t, f"spec.triggers[{i}]")
    return so


def _check_trigger(t: ScaleTrigger, where: str) -> None:
    if t.type not in MODELLED_TRIGGERS:
        raise ModelInputError(
            f"trigger type {t.type!r} is not modelled",
            f"{where}.type",
            f"use one of {', '.join(MODELLED_TRIGGERS)} (a prometheus trigger covers any "
            "metric a Prometheus scrapes)",
        )
    if t.type == "prometheus":
        for key in ("serverAddress", "query", "threshold"):
            if not t.metadata.get(key):
                raise ModelInputError(
                    f"prometheus trigger needs metadata.{key}", f"{where}.metadata.{key}"
                )
        for key in ("threshold", "activationThreshold"):
            if key in t.metadata:
                _float(t.metadata[key], f"{where}.metadata.{key}")
        if t.metricType == "Utilization":
            raise ModelInputError(
                "error trigger type is Utilization, but it needs to be AverageValue or Value "
                "for external metrics",
                f"{where}.metricType",
                "use AverageValue (per replica) or Value",
            )
    else:
        if t.metricType not in ("Utilization", "AverageValue"):
            raise ModelInputError(
                f"a {t.type} trigger needs metricType Utilization or AverageValue",
                f"{where}.metricType",
            )
        if not t.metadata.get("value"):
            raise ModelInputError(f"a {t.type} trigger needs metadata.value", f"{where}.metadata")
        if t.metricType == "Utilization" and not t.metadata["value"].isdigit():
            raise ModelInputError(
                "Utilization is an integer percentage", f"{where}.metadata.value", "e.g. '70'"
            )


def _float(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ModelInputError(f"not a number: {value!r}", where) from None


def quantity(value: float) -> str:
    """GetMetricTargetMili's quantity: whole numbers plain, else milli-units."""
    if not math.isfinite(value) or value < 0:
        value = 0.0
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def metric_name(index: int, trigger: ScaleTrigger) -> str:
    """GenerateMetricNameWithIndex(index, "prometheus")."""
    return f"s{index}-{trigger.type}"


def hpa_name(so: ScaledObject) -> str:
    cfg = so.spec.advanced.horizontalPodAutoscalerConfig if so.spec.advanced else None
    return (cfg.name if cfg and cfg.name else None) or f"keda-hpa-{so.name}"


def _metric_spec(so: ScaledObject, index: int, t: ScaleTrigger) -> dict[str, Any]:
    if t.type == "prometheus":
        target_type = t.metricType or "AverageValue"
        value = quantity(float(t.metadata["threshold"]))
        key = "averageValue" if target_type == "AverageValue" else "value"
        return {
            "type": "External",
            "external": {
                "metric": {
                    "name": metric_name(index, t),
                    "selector": {"matchLabels": {OWNER_LABEL: so.name}},
                },
                "target": {"type": target_type, key: value},
            },
        }
    target: dict[str, Any] = {"type": t.metricType}
    if t.metricType == "Utilization":
        target["averageUtilization"] = int(t.metadata["value"])
    else:
        target["averageValue"] = t.metadata["value"]
    container = t.metadata.get("containerName")
    if container:
        return {
            "type": "ContainerResource",
            "containerResource": {"name": t.type, "container": container, "target": target},
        }
    return {"type": "Resource", "resource": {"name": t.type, "target": target}}


def trigger_order(so: ScaledObject) -> list[int]:
    """The trigger index behind each generated spec.metrics[i]: hpa.go sorts the metric specs
    by type (External < Resource; kept in trigger order within a type here, where Go's
    sort.Slice is not stable)."""
    kinds = ["Resource" if t.type in RESOURCE_TRIGGERS else "External" for t in so.spec.triggers]
    for i, t in enumerate(so.spec.triggers):
        if t.type in RESOURCE_TRIGGERS and t.metadata.get("containerName"):
            kinds[i] = "ContainerResource"
    return sorted(range(len(kinds)), key=lambda i: kinds[i])


def to_hpa(so: ScaledObject) -> dict[str, Any]:
    """The autoscaling/v2 HorizontalPodAutoscaler KEDA's operator creates for `so`."""
    name = hpa_name(so)
    label = name[:63]
    if len(name) > 63:
        label = re.sub(r"[^0-9A-Za-z]+$", "", label)
    labels = {
        "app.kubernetes.io/name": label,
        "app.kubernetes.io/part-of": so.name,
        "app.kubernetes.io/managed-by": "keda-operator",
    }
    excluded = set(
        filter(
            None,
            so.metadata.annotations.get("scaledobject.keda.sh/hpa-excluded-labels", "").split(","),
        )
    )
    labels.update({k: v for k, v in so.metadata.labels.items() if k not in excluded})
    metrics = [_metric_spec(so, i, so.spec.triggers[i]) for i in trigger_order(so)]
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if so.metadata.namespace is not None:
        meta["namespace"] = so.metadata.namespace
    if so.metadata.annotations:
        meta["annotations"] = dict(so.metadata.annotations)
    ref = so.spec.scaleTargetRef
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": ref.apiVersion, "kind": ref.kind, "name": ref.name},
        "minReplicas": so.spec.hpa_min_replicas,
        "maxReplicas": so.spec.hpa_max_replicas,
        "metrics": metrics,
    }
    cfg = so.spec.advanced.horizontalPodAutoscalerConfig if so.spec.advanced else None
    if cfg is not None and cfg.behavior is not None:
        spec["behavior"] = cfg.behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": spec,
    }


def source_metric(so: ScaledObject, external: str) -> str | None:
    """The Prometheus metric behind the generated External metric `external` (the one its
    trigger's query selects), or None when the query is beyond parse_query."""
    for i, t in enumerate(so.spec.triggers):
        if t.type == "prometheus" and metric_name(i, t) == external:
            try:
                return parse_query(t.metadata["query"], f"spec.triggers[{i}].metadata.query").metric
            except ModelInputError:
                return None
    return None


def hpa_for(obj: dict[str, Any]) -> dict[str, Any]:
    """A ScaledObject dict -> its generated HPA dict (ModelInputError on a bad one)."""
    return to_hpa(parse(obj))


__all__ = [
    "API_VERSION",
    "KIND",
    "OWNER_LABEL",
    "ScaledObject",
    "hpa_for",
    "hpa_name",
    "metric_name",
    "parse",
    "quantity",
    "source_metric",
    "to_hpa",
    "trigger_order",
]
