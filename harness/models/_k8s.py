"""Small helpers shared by the models: timestamps, durations, quantities, field access."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_rfc3339(epoch: float) -> str:
    """Float epoch seconds -> RFC 3339 as metav1.Time is written ("2026-12-01T09:13:47Z").

    metav1.Time marshals with second precision, so the fraction is truncated (toward the past)."""
    dt = _EPOCH + timedelta(seconds=math.floor(epoch))
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"
    )


# Go time.ParseDuration units, as kube-controller-manager flags and metav1.Duration take them.
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zA-Z\u00b5\u03bc]*)")
_DURATION_FIX = "a Go duration such as 15s, 5m0s, 1h2m3.5s or 300ms, or a number of seconds"


def parse_duration(value: Any, field: str) -> float:
    """A Go duration string ("5m0s", "15s", "1h2m3.5s", "300ms") or a number of seconds -> seconds.

    Follows time.ParseDuration: a sequence of decimal numbers each with a unit (ns, us/\u00b5s, ms,
    s, m, h), "0" alone needs no unit. Negative durations are rejected (no controller setting
    takes one). Raises ModelInputError naming `field`."""
    if isinstance(value, bool) or value is None:
        raise ModelInputError(f"not a duration: {value!r}", field, _DURATION_FIX)
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ModelInputError(f"must be a duration >= 0, got {value!r}", field, _DURATION_FIX)
        return float(value)
    if not isinstance(value, str):
        raise ModelInputError(f"not a duration: {value!r}", field, _DURATION_FIX)
    text = value.strip()
    body = text[1:] if text[:1] in "+-" else text
    if text.startswith("-") and body not in ("0", ""):
        raise ModelInputError(f"must be a duration >= 0, got {value!r}", field, _DURATION_FIX)
    if body == "0":
        return 0.0
    if not body:
        raise ModelInputError("empty duration", field, _DURATION_FIX)
    total, pos = 0.0, 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        number, unit = (m.group(1), m.group(2)) if m else ("", "")
        if not any(ch.isdigit() for ch in number):
            raise ModelInputError(f"not a Go duration: {value!r}", field, _DURATION_FIX)
        if not unit:
            assert m is not None
            if m.end() < len(body):
                raise ModelInputError(f"not a Go duration: {value!r}", field, _DURATION_FIX)
            raise ModelInputError(
                f"missing unit in duration {value!r}",
                field,
                f"write {number}s for seconds ({_DURATION_FIX})",
            )
        if unit not in _DURATION_UNITS:
            raise ModelInputError(
                f"unknown unit {unit!r} in duration {value!r}",
                field,
                "units are ns, us, ms, s, m, h (e.g. 24h, not 1d)",
            )
        assert m is not None
        total += float(number) * _DURATION_UNITS[unit]
        pos = m.end()
    return total


def to_milli(value: Any, field: str) -> int:
    """Quantity (string or number) -> int64 milli-units, as Quantity.MilliValue()."""
    if isinstance(value, bool) or value is None:
        raise ModelInputError(f"not a quantity: {value!r}", field, "e.g. 500m, 2, 12Gi")
    try:
        return _milli_cached(value) if isinstance(value, str) else milli_value(value)
    except (ValueError, ArithmeticError):
        raise ModelInputError(
            f"not a Kubernetes quantity: {value!r}", field, "e.g. 500m, 2, 12Gi"
        ) from None


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


def pod_parts(pod: dict) -> tuple[dict, dict, str]:
    """(spec, labels, namespace) of a pod created from `pod` (a Pod, a workload or a PodSpec)."""
    spec = pod_spec_of(pod)
    meta = pod_metadata_of(pod)
    return spec, dict(meta.get("labels") or {}), str(meta.get("namespace") or "default")
