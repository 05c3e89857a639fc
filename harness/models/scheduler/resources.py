"""NodeResourcesFit: the fit filter (requests vs allocatable, max pods) and the LeastAllocated
score (pkg/scheduler/framework/plugins/noderesources: fit.go, least_allocated.go), with the
pod's effective requests as component-helpers/resource computes them.
"""

from __future__ import annotations

from collections import Counter

from harness.models._k8s import dig, to_milli

DEFAULT_MAX_PODS = 110
MAX_NODE_SCORE = 100
R_TOO_MANY = "Too many pods"


def pod_requests(spec: dict) -> dict[str, int]:
    """Effective requests in milli-units: sum of containers (+ sidecars), max with init containers.

    A resource with only a limit (e.g. nvidia.com/gpu) requests its limit, as API defaulting
    does."""

    def one(c: dict) -> dict[str, int]:
        res = c.get("resources") or {}
        out = {
            k: to_milli(v, f"containers[{c.get('name')}].resources.requests.{k}")
            for k, v in (res.get("requests") or {}).items()
        }
        for k, v in (res.get("limits") or {}).items():
            out.setdefault(k, to_milli(v, f"containers[{c.get('name')}].resources.limits.{k}"))
        return out

    total: Counter[str] = Counter()
    for c in spec.get("containers") or []:
        total.update(one(c))
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") == "Always":
            total.update(one(c))
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") != "Always":
            for k, v in one(c).items():
                total[k] = max(total[k], v)
    return dict(total)


def node_allocatable(node: dict) -> dict[str, int]:
    name = dig(node, "metadata", "name", default="?")
    alloc = dig(node, "status", "allocatable") or dig(node, "status", "capacity") or {}
    return {k: to_milli(v, f"nodes[{name}].status.allocatable.{k}") for k, v in alloc.items()}


def cached_requests(pod: dict) -> dict[str, int]:
    """An existing pod's requests: its `_requests` (set when the model placed it), else computed."""
    cached = pod.get("_requests")
    if cached is None:
        cached = pod_requests(pod.get("spec") or {})
    return cached


def _used(here: list[dict]) -> Counter[str]:
    used: Counter[str] = Counter()
    for p in here:
        used.update(cached_requests(p))
    return used


def fit_filter(want: dict[str, int], node: dict, here: list[dict]) -> str | None:
    """Fit.Filter: the pod count, then each requested resource against what is left."""
    alloc = node_allocatable(node)
    max_pods = alloc.get("pods", DEFAULT_MAX_PODS * 1000) // 1000
    if len(here) + 1 > max_pods:
        return R_TOO_MANY
    used = _used(here)
    for res, amount in sorted(want.items()):
        if amount == 0 or (res == "ephemeral-storage" and res not in alloc):
            continue
        if used[res] + amount > alloc.get(res, 0):
            return f"Insufficient {res}"
    return None


def least_allocated(want: dict[str, int], node: dict, here: list[dict]) -> float:
    """LeastAllocated over cpu and memory, equal weights, 0..100."""
    alloc = node_allocatable(node)
    used = _used(here)
    scores = []
    for res in ("cpu", "memory"):
        cap = alloc.get(res, 0)
        if cap <= 0:
            continue
        req = used[res] + want.get(res, 0)
        scores.append(max(0.0, (cap - req) * MAX_NODE_SCORE / cap))
    return sum(scores) / len(scores) if scores else 0.0
