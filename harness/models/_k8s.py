"""Small helpers shared by the models: timestamps, quantities, field access with field paths."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from harness.quantity import milli_value


class ModelInputError(ValueError):
    """A model input is malformed; `field` is the dotted path of the bad field."""

    def __init__(self, message: str, field: str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.field = field
        self.fix = fix
        super().__init__(f"{field}: {message}" if field else message)


def to_epoch(value: Any, field: str = "timestamp") -> float:
    """RFC3339 string (fractional seconds allowed) or float epoch seconds -> float epoch seconds."""
    if isinstance(value, bool):
        raise ModelInputError(f"not a timestamp: {value!r}", field)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ModelInputError(
                f"not an RFC3339 timestamp: {value!r}", field, "e.g. 2024-01-01T00:00:00Z"
            ) from None
    else:
        raise ModelInputError(f"not a timestamp: {value!r}", field)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def to_milli(value: Any, field: str) -> int:
    """Quantity (string or number) -> int64 milli-units, as Quantity.MilliValue()."""
    if isinstance(value, bool) or value is None:
        raise ModelInputError(f"not a quantity: {value!r}", field, "e.g. 500m, 2, 12Gi")
    try:
        return _milli_cached(value) if isinstance(value, str) else milli_value(value)
    except (ValueError, ArithmeticError):
        raise ModelInputError(f"not a Kubernetes quantity: {value!r}", field, "e.g. 500m, 2, 12Gi") from None


@lru_cache(maxsize=4096)
def _milli_cached(value: str) -> int:
    return milli_value(value)


def format_milli(m: int) -> str:
    """int64 milli-units -> canonical-ish Quantity string ("250m", "2")."""
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"


def dig(obj: Any, *path: str, default: Any = None) -> Any:
    cur = obj
    for key in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(key)
        if cur is None:
            return default
    return cur


def pod_spec_of(obj: dict, field: str = "pod") -> dict:
    """The PodSpec inside a Pod, a workload (Deployment/StatefulSet/ReplicaSet/Job) or a PodSpec."""
    if not isinstance(obj, dict):
        raise ModelInputError("expected a mapping (Pod, Deployment or PodSpec)", field)
    tmpl = dig(obj, "spec", "template", "spec")
    if isinstance(tmpl, dict):
        return tmpl
    spec = obj.get("spec")
    if isinstance(spec, dict) and "containers" in spec:
        return spec
    if "containers" in obj:
        return obj
    raise ModelInputError(
        "no containers found", f"{field}.spec", "pass a v1 Pod, an apps/v1 Deployment or a PodSpec"
    )


def pod_metadata_of(obj: dict) -> dict:
    """Metadata a pod created from obj would carry (template metadata for workloads)."""
    tmpl_meta = dig(obj, "spec", "template", "metadata")
    if isinstance(tmpl_meta, dict):
        meta = dict(tmpl_meta)
        meta.setdefault("namespace", dig(obj, "metadata", "namespace", default="default"))
        return meta
    meta = dict(obj.get("metadata") or {})
    meta.setdefault("namespace", "default")
    return meta


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """metav1.LabelSelector semantics; a nil selector matches nothing, {} matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    return all(expr_matches(expr, labels) for expr in selector.get("matchExpressions") or [])


def expr_matches(expr: dict, labels: dict) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    has = key in labels
    if op == "In":
        return has and labels[key] in values
    if op == "NotIn":
        return not has or labels[key] not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt"):
        try:
            lv, rv = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return lv > rv if op == "Gt" else lv < rv
    raise ModelInputError(f"unknown operator {op!r}", "matchExpressions.operator")
