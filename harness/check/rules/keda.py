"""KEDA rules: what a ScaledObject adds to the HPA KEDA generates for it (harness.models.keda).

The generated HPA goes through every HPA rule like a hand-written one; its findings are then
pointed at the ScaledObject's own fields (`as_scaled_object`). What only KEDA does is checked
here: from zero (or idleReplicaCount) nothing scales out before the next poll of the triggers
(pollingInterval), and with useCachedMetrics the HPA itself reads values up to one
pollingInterval old.
"""

from __future__ import annotations

import re

from harness.check.findings import Finding
from harness.check.rules._base import finding, secs
from harness.check.targets import Targets
from harness.check.workload import Workload
from harness.models import keda

HPA_SYNC_S = 15  # --horizontal-pod-autoscaler-sync-period default

#: generated-HPA field -> the ScaledObject field it comes from
FIELD_MAP = (
    ("spec.minReplicas", "spec.minReplicaCount"),
    ("spec.maxReplicas", "spec.maxReplicaCount"),
    ("spec.behavior", "spec.advanced.horizontalPodAutoscalerConfig.behavior"),
    ("spec.metrics", "spec.triggers"),
)


def _so(w: Workload) -> keda.ScaledObject | None:
    return keda.parse(w.scaled_object) if w.scaled_object is not None else None


def _resource(so: keda.ScaledObject) -> str:
    return f"ScaledObject/{so.name}"


def as_scaled_object(w: Workload, f: Finding) -> Finding:
    """A finding on the generated HPA, pointed at the ScaledObject field it comes from."""
    so = _so(w)
    if so is None or f.resource != f"HorizontalPodAutoscaler/{keda.hpa_name(so)}":
        return f
    field = f.field
    m = re.match(r"spec\.metrics\[(\d+)\]", field)
    order = keda.trigger_order(so)
    if m and int(m.group(1)) < len(order):  # metrics are sorted by type: back to the trigger
        field = f"spec.triggers[{order[int(m.group(1))]}]{field[m.end() :]}"
    else:
        for hpa_field, so_field in FIELD_MAP:
            if field == hpa_field or field.startswith((hpa_field + ".", hpa_field + "[")):
                field = so_field + field[len(hpa_field) :]
                break
    return f.model_copy(
        update={
            "resource": _resource(so),
            "field": field,
            "message": f"{f.message} (in {f.resource}, the HPA KEDA generates)",
        }
    )


def keda_scale_out(w: Workload, t: Targets) -> list[Finding]:
    """Scale-out delay KEDA adds: activation from zero/idle waits for the next poll (up to
    pollingInterval) and a cold start; cached metrics make the HPA's reading up to one
    pollingInterval old. Either beyond spike.scale_out_s is a warning."""
    so = _so(w)
    if so is None:
        return []
    spec, limit = so.spec, t.profile.spike.scale_out_s
    poll = spec.polling_interval_s
    cold = t.cold_start_p95_s.value if t.cold_start_p95_s is not None else None
    cold_txt = f"cold start p95 {secs(cold)}" if cold is not None else "cold start unknown"
    out: list[Finding] = []
    if spec.scales_to_zero_or_idle:
        floor = spec.idleReplicaCount if spec.idleReplicaCount is not None else 0
        worst = poll + (cold or 0.0)
        if worst > limit or cold is None:
            out.append(
                finding(
                    w,
                    "keda-activation",
                    "warning" if worst > limit else "info",
                    "spec.pollingInterval",
                    f"at {floor} replicas (idle) the first replica is asked for only at the next "
                    f"poll of the triggers (every {poll} s), then cold-starts"
                    + ("; requests arriving at 0 replicas fail meanwhile" if floor == 0 else ""),
                    resource=_resource(so),
                    measured=f"pollingInterval {poll} s + {cold_txt} = up to {secs(worst)}"
                    + ("" if cold is not None else " + the cold start"),
                    required=f"first new replica Ready within spike.scale_out_s {limit:g} s",
                    fix=(
                        f"lower pollingInterval to <= {max(1, int(limit - cold))} s, or set "
                        "minReplicaCount >= 1 so a spike never starts from zero"
                        if cold is not None and cold < limit
                        else "set minReplicaCount >= 1: from zero the cold start alone "
                        "exceeds the target"
                        if cold is not None
                        else "pass --measured with cold_start_p95_s to check this"
                    ),
                    basis=t.cold_start_p95_s.basis if t.cold_start_p95_s is not None else "",
                )
            )
        own = _own_metric_triggers(w, so)
        if (
            floor == 0
            and own
            and len(own)
            == len([tr for tr in spec.triggers if tr.type not in keda.RESOURCE_TRIGGERS])
        ):
            i, metric = own[0]
            out.append(
                finding(
                    w,
                    "keda-activation-own-metric",
                    "warning",
                    f"spec.triggers[{i}].metadata.query",
                    f"at 0 replicas no pod serves {metric}: the query is empty (0 with "
                    "ignoreNullValues) and never exceeds activationThreshold, so nothing "
                    "activates the workload again",
                    resource=_resource(so),
                    measured=f"every activating trigger reads {metric}, a metric of "
                    f"{w.resource}'s own pods",
                    required="a signal that exists at 0 replicas",
                    fix="add a trigger on a metric from outside the pods (a gateway's or "
                    "load balancer's queue), or set minReplicaCount >= 1",
                )
            )
    cached = [i for i, tr in enumerate(spec.triggers) if tr.useCachedMetrics]
    if cached:
        worst = poll + HPA_SYNC_S + (cold or 0.0)
        if worst > limit:
            out.append(
                finding(
                    w,
                    "keda-cached-metrics",
                    "warning",
                    f"spec.triggers[{cached[0]}].useCachedMetrics",
                    "the HPA reads the value KEDA cached at its last poll: a spike is seen up to "
                    f"{poll} s late on top of the HPA's {HPA_SYNC_S} s sync",
                    resource=_resource(so),
                    measured=f"pollingInterval {poll} s + sync {HPA_SYNC_S} s + {cold_txt} = "
                    f"up to {secs(worst)}",
                    required=f"first new replica Ready within spike.scale_out_s {limit:g} s",
                    fix="set useCachedMetrics: false (the metrics server then queries the "
                    "scaler at each HPA sync) or lower pollingInterval",
                )
            )
    return out


def _own_metric_triggers(w: Workload, so: keda.ScaledObject) -> list[tuple[int, str]]:
    """Prometheus triggers whose query reads a metric the workload's server kind serves."""
    own = {m.replace(":", "_") for m in w.server.metrics.values()}
    out = []
    for i, tr in enumerate(so.spec.triggers):
        if tr.type != "prometheus":
            continue
        metric = keda.source_metric(so, keda.metric_name(i, tr))
        if metric is not None and metric.replace(":", "_") in own:
            out.append((i, metric))
    return out


RULES = [keda_scale_out]
