"""The HPA's metrics inputs, a port of pkg/controller/podautoscaler/metrics (client.go,
interfaces.go): per-pod resource usage from metrics.k8s.io PodMetrics, and custom and external
metric values in the short form or as the metrics APIs' lists.

What `kubectl get --raw` prints can be pasted as is:

* `/apis/custom.metrics.k8s.io/v1beta2/namespaces/NS/pods/*/METRIC` (and `.../deployments.apps/
  NAME/METRIC` for an Object metric) returns a `MetricValueList`: `items[]` with
  `describedObject{kind, name, namespace}`, `metric{name, selector}`, `timestamp`,
  `windowSeconds` and `value` (a quantity such as "1500m"). v1beta1 names the metric
  `metricName` instead of `metric.name`.
* `/apis/external.metrics.k8s.io/v1beta1/namespaces/NS/METRIC` returns an
  `ExternalMetricValueList`: `items[]` with `metricName`, `metricLabels`, `timestamp`, `value`.

As the controller's metrics client (metrics/client.go) does: a custom metric item without
`windowSeconds` has a 1 minute window, values are read as Quantity.MilliValue(), and Pod items
are keyed by `describedObject.name`. Metric selectors are not re-applied: paste the list the
HPA's own selector returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.models._k8s import ModelInputError, dig, parse_duration, to_epoch, to_milli


@dataclass
class PodMetric:
    """metrics.PodMetric: one pod's value (milli-units), when it was taken and over what window."""

    value: int  # milli-units
    timestamp: float = 0.0
    window: float = 0.0


def resource_pod_metrics(
    pod_metrics: list[dict], resource: str, container: str = ""
) -> dict[str, PodMetric]:
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
        window = parse_duration(pm.get("window", "15s"), f + ".window")
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


DEFAULT_WINDOW_S = 60.0  # metricServerDefaultMetricWindow
_LIST_KINDS = ("MetricValueList", "ExternalMetricValueList")
_SHAPE_FIX = (
    "customMetrics is {pods: {METRIC: {POD: value} | MetricValueList}, object: {METRIC: "
    "value | MetricValueList}, external: {METRIC: [values] | ExternalMetricValueList}}, "
    "or a MetricValueList / ExternalMetricValueList (or a list of them) as kubectl get "
    "--raw prints it"
)


@dataclass(frozen=True)
class ObjectValue:
    kind: str | None  # None: the short form, matches any described object
    name: str | None
    value: int  # milli-units
    timestamp: float | None = None


@dataclass
class CustomMetrics:
    """Metric values by metric name, normalized from any accepted input form."""

    pods: dict[str, dict[str, PodMetric]] = field(default_factory=dict)
    objects: dict[str, list[ObjectValue]] = field(default_factory=dict)
    external: dict[str, list[int]] = field(default_factory=dict)

    def object_value(self, metric: str, described: dict | None) -> int | None:
        """The value for the HPA's describedObject: a kind/name match, else a short-form value."""
        values = self.objects.get(metric) or []
        kind = (described or {}).get("kind")
        name = (described or {}).get("name")
        for v in values:
            if v.kind is not None and v.kind == kind and v.name == name:
                return v.value
        for v in values:
            if v.kind is None:
                return v.value
        return None

    def timestamps(self) -> list[float]:
        out = [
            m.timestamp for per_pod in self.pods.values() for m in per_pod.values() if m.timestamp
        ]
        out += [v.timestamp for vs in self.objects.values() for v in vs if v.timestamp is not None]
        return out


def is_metric_list(obj: Any) -> bool:
    """A MetricValueList / ExternalMetricValueList object (by kind, or apiVersion with items)."""
    if not isinstance(obj, dict):
        return False
    if obj.get("kind") in _LIST_KINDS:
        return True
    api = str(obj.get("apiVersion") or "")
    return isinstance(obj.get("items"), list) and api.startswith(
        ("custom.metrics.k8s.io/", "external.metrics.k8s.io/")
    )


def parse_custom_metrics(raw: Any, now: float, field_name: str = "customMetrics") -> CustomMetrics:
    """Normalize `customMetrics` (see module doc); ModelInputError names the bad field."""
    out = CustomMetrics()
    if raw is None:
        return out
    if isinstance(raw, list) or is_metric_list(raw):
        _add_lists(out, raw, field_name, now, section=None)
        return out
    if not isinstance(raw, dict):
        raise ModelInputError("expected a mapping or a metric value list", field_name, _SHAPE_FIX)
    unknown = sorted(set(raw) - {"pods", "object", "external"})
    if unknown:
        raise ModelInputError(
            f"unknown key(s) {', '.join(unknown)}", f"{field_name}.{unknown[0]}", _SHAPE_FIX
        )
    for section in ("pods", "object", "external"):
        value = raw.get(section)
        f = f"{field_name}.{section}"
        if value is None:
            continue
        if isinstance(value, list) or is_metric_list(value):
            _add_lists(out, value, f, now, section=section)
            continue
        if not isinstance(value, dict):
            raise ModelInputError("expected a mapping of metric name to values", f, _SHAPE_FIX)
        for metric, v in value.items():
            _add_named(out, section, str(metric), v, f"{f}.{metric}", now)
    return out


def _add_named(out: CustomMetrics, section: str, metric: str, v: Any, f: str, now: float) -> None:
    """customMetrics.<section>.<metric>: the short form, or a list (whose items name `metric`)."""
    if is_metric_list(v) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
        _add_lists(out, v, f, now, section=section, expect_metric=metric)
        return
    if section == "pods":
        if not isinstance(v, dict):
            raise ModelInputError("expected {pod name: value} or a MetricValueList", f, _SHAPE_FIX)
        per_pod = out.pods.setdefault(metric, {})
        for pod, q in v.items():
            per_pod[str(pod)] = PodMetric(to_milli(q, f"{f}.{pod}"), now, 0.0)
    elif section == "object":
        if isinstance(v, dict):  # one MetricValue item
            _add_item(out, v, f, now, section, metric)
        else:
            out.objects.setdefault(metric, []).append(ObjectValue(None, None, to_milli(v, f)))
    else:
        values = v if isinstance(v, list) else [v]
        out.external.setdefault(metric, []).extend(
            to_milli(x, f"{f}[{j}]") for j, x in enumerate(values)
        )


def _add_lists(
    out: CustomMetrics,
    raw: Any,
    f: str,
    now: float,
    *,
    section: str | None,
    expect_metric: str | None = None,
) -> None:
    lists = raw if isinstance(raw, list) else [raw]
    for i, lst in enumerate(lists):
        lf = f"{f}[{i}]" if isinstance(raw, list) else f
        if not isinstance(lst, dict):
            raise ModelInputError("expected a metric value list or item", lf, _SHAPE_FIX)
        if "items" not in lst:  # a bare MetricValue item in a list
            _add_item(
                out,
                lst,
                lf,
                now,
                section,
                expect_metric,
                external=section == "external" or "metricLabels" in lst,
            )
            continue
        items = lst.get("items")
        if not isinstance(items, list):
            raise ModelInputError("items must be a list", f"{lf}.items", _SHAPE_FIX)
        external = lst.get("kind") == "ExternalMetricValueList" or str(
            lst.get("apiVersion") or ""
        ).startswith("external.metrics.k8s.io/")
        if section == "external" and not external and items and "describedObject" in items[0]:
            raise ModelInputError(
                "a custom metrics MetricValueList under external",
                lf,
                "put it under customMetrics.pods or customMetrics.object",
            )
        if section in ("pods", "object") and external:
            raise ModelInputError(
                "an ExternalMetricValueList under " + section,
                lf,
                "put it under customMetrics.external",
            )
        for j, item in enumerate(items):
            _add_item(
                out,
                item,
                f"{lf}.items[{j}]",
                now,
                section,
                expect_metric,
                external=external or section == "external",
            )


def _add_item(
    out: CustomMetrics,
    item: Any,
    f: str,
    now: float,
    section: str | None,
    expect_metric: str | None,
    *,
    external: bool = False,
) -> None:
    if not isinstance(item, dict):
        raise ModelInputError("expected a metric value item", f, _SHAPE_FIX)
    metric = dig(item, "metric", "name") or item.get("metricName") or expect_metric
    if not metric:
        raise ModelInputError(
            "the item names no metric (metric.name or metricName)",
            f,
            "paste the list as kubectl get --raw prints it",
        )
    if expect_metric is not None and metric != expect_metric:
        raise ModelInputError(
            f"item is for metric {metric!r}, listed under {expect_metric!r}",
            f + (".metricName" if "metricName" in item else ".metric.name"),
            f"list it under {metric!r}, or use the {expect_metric!r} list",
        )
    if "value" not in item:
        raise ModelInputError("value is required", f"{f}.value", "a quantity such as 1500m")
    value = to_milli(item["value"], f"{f}.value")
    ts = to_epoch(item["timestamp"], f"{f}.timestamp") if item.get("timestamp") else None
    if external:
        out.external.setdefault(str(metric), []).append(value)
        return
    described = item.get("describedObject")
    if not isinstance(described, dict) or not described.get("kind") or not described.get("name"):
        raise ModelInputError(
            "describedObject with kind and name is required",
            f"{f}.describedObject",
            "paste the list as kubectl get --raw prints it",
        )
    kind, name = str(described["kind"]), str(described["name"])
    if section == "pods" and kind != "Pod":
        raise ModelInputError(
            f"a Pods metric must describe Pods, got kind {kind!r}",
            f"{f}.describedObject.kind",
            "put Object metrics under customMetrics.object",
        )
    if kind == "Pod" and section in ("pods", None):
        window = item.get("windowSeconds", DEFAULT_WINDOW_S)
        if window is None:
            window = DEFAULT_WINDOW_S
        if isinstance(window, bool) or not isinstance(window, (int, float)):
            raise ModelInputError("windowSeconds must be a number", f"{f}.windowSeconds")
        out.pods.setdefault(str(metric), {})[name] = PodMetric(
            value, ts if ts is not None else now, float(window)
        )
    if section in ("object", None):
        out.objects.setdefault(str(metric), []).append(ObjectValue(kind, name, value, ts))
