"""Node predicates: the NodeUnschedulable, TaintToleration and NodeAffinity filter plugins
(pkg/scheduler/framework/plugins/nodeunschedulable, tainttoleration, nodeaffinity), with the
toleration and node-selector matching of component-helpers/scheduling/corev1.
"""

from __future__ import annotations

from harness.models._k8s import dig, expr_matches

# Reasons, worded like the scheduler's FailedScheduling message.
R_UNSCHEDULABLE = "node(s) were unschedulable"
R_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def node_affinity_matches(spec: dict, node: dict) -> bool:
    """nodeSelector and required node affinity (nodeSelectorTerms are ORed)."""
    labels = dig(node, "metadata", "labels", default={}) or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    terms = dig(
        spec,
        "affinity",
        "nodeAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms",
    )
    if terms:
        ok = False
        for term in terms:
            exprs = term.get("matchExpressions") or []
            fields = term.get("matchFields") or []
            if not exprs and not fields:
                continue
            if all(expr_matches(e, labels) for e in exprs) and all(
                expr_matches(f, {"metadata.name": dig(node, "metadata", "name")}) for f in fields
            ):
                ok = True
                break
        if not ok:
            return False
    return True


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """Toleration.ToleratesTaint for any of `tolerations`."""
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def untolerated_taint(spec: dict, node: dict) -> dict | None:
    """First NoSchedule/NoExecute taint the pod does not tolerate."""
    tolerations = spec.get("tolerations") or []
    for taint in dig(node, "spec", "taints", default=[]) or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return taint
    return None


def node_predicates(spec: dict, node: dict) -> str | None:
    """The first failing of NodeUnschedulable, TaintToleration, NodeAffinity (None: all pass)."""
    if dig(node, "spec", "unschedulable") and not tolerates(
        spec.get("tolerations") or [], UNSCHEDULABLE_TAINT
    ):
        return R_UNSCHEDULABLE
    taint = untolerated_taint(spec, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    if not node_affinity_matches(spec, node):
        return R_AFFINITY
    return None
