"""Availability rules: more than one replica, zone spread that survives a zone loss, N-1 zones
carry the load, PDBs that let drains proceed."""

from __future__ import annotations

import math

from harness.check.findings import Finding
from harness.check.rules._base import finding
from harness.check.targets import Targets
from harness.check.whatif import zone_loss
from harness.check.workload import POD_SPEC, ROLLING_UPDATE, Workload, scaled

ZONE_KEY = "topology.kubernetes.io/zone"
TSC = f"{POD_SPEC}.topologySpreadConstraints"


def _zone_constraints(w: Workload) -> list[tuple[int, dict]]:
    return [
        (i, c)
        for i, c in enumerate(w.pod_spec.get("topologySpreadConstraints") or [])
        if c.get("topologyKey") == ZONE_KEY
    ]


def _zone_anti_affinity(w: Workload) -> bool:
    anti = (w.pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    return any(
        t.get("topologyKey") == ZONE_KEY
        for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    )


def _zone_anti_affinity_findings(w: Workload, t: Targets) -> list[Finding]:
    """Required per-zone anti-affinity spreads, but allows one replica per zone: the HPA cannot
    grow past the zone count, and a lost zone's replica has nowhere to go."""
    zones = t.profile.zones.zones
    where = f"{POD_SPEC}.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    fix = (
        "spread with topologySpreadConstraints (maxSkew: 1, topologyKey: "
        "topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor) "
        "or make the anti-affinity preferred"
    )
    out: list[Finding] = []
    if w.max_replicas > len(zones):
        out.append(
            finding(
                w,
                "zone-anti-affinity-caps-replicas",
                "error",
                where,
                "required zone anti-affinity allows one replica per zone: replicas beyond "
                f'{len(zones)} stay Pending ("didn\'t match pod anti-affinity rules"), so the '
                "autoscaler cannot add capacity",
                measured=f"max {w.max_replicas} replicas, {len(zones)} zones",
                required=f"at most {len(zones)} replicas, or no per-zone exclusivity",
                fix=fix,
            )
        )
    loss = zone_loss(
        w.obj, min(w.steady_replicas, len(zones)), zones, t.profile.zones.nodes_per_zone
    )
    if loss.stranded:
        out.append(
            finding(
                w,
                "zone-anti-affinity-strands",
                "error",
                where,
                "after a zone loss the lost replica cannot be placed again: every surviving zone "
                "already holds one",
                measured=f"{loss.stranded} of {loss.lost} replicas from the lost zone stay Pending",
                required="every lost replica rescheduled in the surviving zones",
                fix=fix,
                basis=loss.engine,
            )
        )
    return out


def zone_spread(w: Workload, t: Targets) -> list[Finding]:
    n = w.steady_replicas
    zones = t.profile.zones.zones
    if n < 2 or len(zones) < 2:
        return []
    cons = _zone_constraints(w)
    if not cons:
        if _zone_anti_affinity(w):
            return _zone_anti_affinity_findings(w, t)
        return [
            finding(
                w,
                "zone-spread-missing",
                "error",
                TSC,
                f"nothing spreads the {n} replicas over zones: the scheduler may put all of them "
                "in one zone, and losing it takes the whole service down",
                measured="no topologySpreadConstraints on topology.kubernetes.io/zone",
                required=f"replicas spread over {len(zones)} zones",
                fix="add topologySpreadConstraints: [{maxSkew: 1, topologyKey: "
                "topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, "
                "nodeTaintsPolicy: Honor, labelSelector: <pod labels>}]",
            )
        ]
    out: list[Finding] = []
    hard = [
        (i, c) for i, c in cons if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
    ]
    if not hard:
        out.append(
            finding(
                w,
                "zone-spread-soft",
                "warning",
                f"{TSC}[{cons[0][0]}].whenUnsatisfiable",
                "zone spreading is ScheduleAnyway only: a preference blended with other scores, so "
                "replicas can still pile into one zone",
                measured="whenUnsatisfiable: ScheduleAnyway",
                required="DoNotSchedule with nodeTaintsPolicy: Honor",
                fix="use whenUnsatisfiable: DoNotSchedule and nodeTaintsPolicy: Honor",
            )
        )
    for i, c in hard:
        if c.get("nodeTaintsPolicy", "Ignore") == "Honor":
            continue
        loss = zone_loss(w.obj, n, zones, t.profile.zones.nodes_per_zone)
        out.append(
            finding(
                w,
                "zone-spread-taints-ignored",
                "error",
                f"{TSC}[{i}].nodeTaintsPolicy",
                "DoNotSchedule zone spread with nodeTaintsPolicy Ignore (the default): after a "
                "zone dies its tainted nodes still count as a domain with 0 pods, so replacements "
                "of the lost replicas stay Pending "
                '("didn\'t match pod topology spread constraints")',
                measured=f"{loss.stranded} of {loss.lost} replicas from the lost zone cannot be "
                f"placed again ({n} replicas over {len(zones)} zones)",
                required="every lost replica rescheduled in the surviving zones",
                fix="set nodeTaintsPolicy: Honor on the constraint",
                basis=loss.engine,
            )
        )
    return out


ZONE_KEY = "topology.kubernetes.io/zone"


def _pinned_zones(w: Workload) -> tuple[str, set[str]] | None:
    """The zones a nodeSelector or required node affinity restricts the pods to (field, zones)."""
    spec = w.pod_spec
    zone = (spec.get("nodeSelector") or {}).get(ZONE_KEY)
    if zone is not None:
        return "spec.template.spec.nodeSelector", {str(zone)}
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    allowed: set[str] = set()
    for term in required.get("nodeSelectorTerms") or []:  # terms are ORed
        zones = [
            set(e.get("values") or [])
            for e in term.get("matchExpressions") or []
            if e.get("key") == ZONE_KEY and e.get("operator") == "In"
        ]
        if not zones:
            return None  # a term without a zone restriction allows every zone
        allowed |= set.intersection(*zones)
    if not allowed:
        return None
    return (
        "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
        allowed,
    )


def zone_pinned(w: Workload, t: Targets) -> list[Finding]:
    """Replicas confined to one zone by node selection: no spread constraint can help."""
    pinned = _pinned_zones(w)
    if pinned is None or len(pinned[1]) != 1 or len(t.profile.zones.zones) < 2:
        return []
    where, zones = pinned
    zone = next(iter(zones))
    return [
        finding(
            w,
            "zone-pinned",
            "error",
            where,
            f"the pods may only run in zone {zone}: every replica is there, so losing that zone "
            "takes the whole service down, and the replacements have no zone to go to (a zone "
            "spread constraint counts only the eligible zone and is satisfied)",
            measured=f"{ZONE_KEY}={zone}",
            required=f"nodes of at least 2 of {len(t.profile.zones.zones)} zones",
            fix=f"select a node pool present in every zone (drop {ZONE_KEY} from the selector, or "
            "allow several zones with operator In), then spread with topologySpreadConstraints",
        )
    ]


def zone_capacity(w: Workload, t: Targets) -> list[Finding]:
    """Right after losing the fullest zone, do the survivors carry the baseline?"""
    zones = t.profile.zones.zones
    n = w.steady_replicas
    if len(zones) < 2 or not _zone_constraints(w):
        return []
    survivors = n - math.ceil(n / len(zones))
    base = t.profile.load.baseline_rps
    cap = t.capacity_rps_per_replica
    if survivors <= 0:
        return [
            finding(
                w,
                "zone-capacity",
                "error",
                "spec.replicas" if w.hpa is None else "spec.minReplicas",
                f"{n} replica(s) over {len(zones)} zones: losing one zone leaves none",
                resource=None
                if w.hpa is None
                else f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}",
                measured=f"{survivors} replicas after the loss",
                required=">= 1",
                fix=f"run at least {len(zones)} replicas",
            )
        ]
    if cap is None:
        return [
            finding(
                w,
                "zone-capacity",
                "info",
                "spec.replicas",
                "per-replica capacity unknown: N-1 zone capacity not checked",
                fix="pass --measured report.json",
            )
        ]
    if survivors * cap.value < base:
        need = math.ceil(base / cap.value)
        min_total = need + math.ceil(need / (len(zones) - 1))
        return [
            finding(
                w,
                "zone-capacity",
                "error",
                "spec.minReplicas" if w.hpa else "spec.replicas",
                "after losing one zone the surviving replicas cannot carry the baseline load "
                "until new ones are Ready",
                resource=f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}" if w.hpa else None,
                measured=(
                    f"{survivors} replicas x {cap.value:g} rps = {survivors * cap.value:g} rps"
                ),
                required=f">= baseline {base:g} rps",
                fix=f"raise minReplicas to about {min_total}",
                basis=cap.basis,
            )
        ]
    return []


def disruption_budget(w: Workload, t: Targets) -> list[Finding]:
    n = w.steady_replicas
    if n < 2:
        return []
    if not w.pdbs:
        return [
            finding(
                w,
                "pdb-missing",
                "warning",
                "metadata",
                "no PodDisruptionBudget selects these pods: a node drain or cluster upgrade may "
                "evict every replica at once",
                measured="no PodDisruptionBudget",
                required="a PDB allowing 1 disruption",
                fix="add a policy/v1 PodDisruptionBudget with maxUnavailable: 1 and "
                "unhealthyPodEvictionPolicy: AlwaysAllow",
            )
        ]
    out: list[Finding] = []
    if len(w.pdbs) > 1:
        out.append(
            finding(
                w,
                "pdb-multiple",
                "error",
                "metadata.labels",
                "several PodDisruptionBudgets select these pods: the Eviction API answers 500 and "
                "no drain can evict them",
                measured=", ".join(p["metadata"]["name"] for p in w.pdbs),
                required="exactly one PDB",
                fix="keep one PDB per workload",
            )
        )
    for pdb in w.pdbs:
        res = f"PodDisruptionBudget/{pdb['metadata']['name']}"
        spec = pdb.get("spec") or {}
        if "maxUnavailable" in spec:
            allowed = scaled(w, spec["maxUnavailable"], n, True, "spec.maxUnavailable", res)
            field, have = "spec.maxUnavailable", f"maxUnavailable {spec['maxUnavailable']}"
        elif "minAvailable" in spec:
            allowed = n - scaled(w, spec["minAvailable"], n, True, "spec.minAvailable", res)
            field, have = "spec.minAvailable", f"minAvailable {spec['minAvailable']}"
        else:
            continue
        if allowed <= 0:
            out.append(
                finding(
                    w,
                    "pdb-blocks-drain",
                    "error",
                    field,
                    f"with all {n} replicas healthy the budget allows 0 disruptions: every "
                    "eviction gets 429 and node drains (upgrades, zone maintenance) hang forever",
                    resource=res,
                    measured=f"{have} -> disruptionsAllowed 0 at {n} replicas",
                    required="disruptionsAllowed >= 1",
                    fix="set maxUnavailable: 1",
                )
            )
        elif spec.get("unhealthyPodEvictionPolicy", "IfHealthyBudget") != "AlwaysAllow":
            out.append(
                finding(
                    w,
                    "pdb-unhealthy-policy",
                    "info",
                    "spec.unhealthyPodEvictionPolicy",
                    "pods still loading (Running, not Ready) can be evicted only while the budget "
                    "is intact: a slow cold start can stall drains",
                    resource=res,
                    measured=spec.get("unhealthyPodEvictionPolicy", "IfHealthyBudget (default)"),
                    required="AlwaysAllow",
                    fix="set unhealthyPodEvictionPolicy: AlwaysAllow",
                )
            )
    return out


UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_S = 300  # DefaultTolerationSeconds admission plugin (not-ready / unreachable)


def _replica_floor(w: Workload) -> tuple[int, str, str | None] | None:
    """(replicas at the floor, field, resource) for the single-replica rule; None when the
    workload runs more than one replica or is deliberately scaled to zero."""
    spec = w.obj.get("spec") or {}
    if spec.get("replicas") == 0:
        return None  # scaled to zero (an HPA does not act on a zero-replica target either)
    if w.hpa is not None:
        floor = (w.hpa.get("spec") or {}).get("minReplicas")
        n = 1 if floor is None else int(floor)
        if n > 1:
            return None
        return n, "spec.minReplicas", f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}"
    if w.spec_replicas > 1:
        return None
    return w.spec_replicas, "spec.replicas", None


def _unreachable_toleration_s(w: Workload) -> int | None:
    """How long the pod stays bound to a dead node (None: forever)."""
    for tol in w.pod_spec.get("tolerations") or []:
        key = tol.get("key")
        if (key == UNREACHABLE_TAINT or (not key and tol.get("operator") == "Exists")) and tol.get(
            "effect"
        ) in (None, "", "NoExecute"):
            s = tol.get("tolerationSeconds")
            return None if s is None else max(int(s), 0)
    return DEFAULT_TOLERATION_S


def _rollout_cover(w: Workload) -> tuple[bool, str]:
    """Does a rollout keep one pod serving at one replica? (covered, why)."""
    if w.kind == "StatefulSet":
        return False, (
            "a StatefulSet rolling update deletes the pod before it creates the "
            "new one: every rollout is an outage"
        )
    strategy = (w.obj.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") == "Recreate":
        return False, (
            "strategy Recreate stops the pod before it starts the new one: every "
            "rollout is an outage"
        )
    ru = strategy.get("rollingUpdate") or {}
    surge = scaled(w, ru.get("maxSurge", "25%"), 1, True, f"{ROLLING_UPDATE}.maxSurge")
    unavailable = scaled(
        w, ru.get("maxUnavailable", "25%"), 1, False, f"{ROLLING_UPDATE}.maxUnavailable"
    )
    if surge == 0 or unavailable > 0:
        return False, (
            f"maxSurge {surge}, maxUnavailable {max(unavailable, 1)} at 1 replica: "
            "the pod is stopped before its replacement is Ready, so every rollout "
            "is an outage"
        )
    if not any(w.containers[i].get("readinessProbe") for i in w.serving_indexes()):
        return False, (
            f"maxSurge {surge}, maxUnavailable 0 would keep the old pod serving, but "
            "without a readiness probe the new pod counts as Ready while it still "
            "loads and the old one is stopped: rollouts are outages too"
        )
    gpu = (
        " (the surge pod needs a second free GPU, see gpu-rollout-deadlock)" if w.uses_gpu() else ""
    )
    return True, (
        f"maxSurge {surge}, maxUnavailable 0 keeps the old pod serving until the "
        f"new one is Ready{gpu}: rollouts of a template change (image, env, "
        "`kubectl rollout restart`) are covered; drains, evictions, node and zone "
        "failures and container restarts (OOM kill, liveness kill) are not"
    )


def _pdb_effect(w: Workload) -> tuple[str, str]:
    """What the PDB(s) do for one replica: (message, measured)."""
    if not w.pdbs:
        return (
            "No PodDisruptionBudget: a drain evicts the only pod at once. A PDB cannot fix "
            "one replica: minAvailable 1 (or maxUnavailable 0) blocks every voluntary "
            "eviction forever, maxUnavailable 1 permits the outage, and neither helps "
            "against a node crash, zone loss or OOM kill",
            "no PodDisruptionBudget",
        )
    parts, measured = [], []
    for pdb in w.pdbs:
        res = f"PodDisruptionBudget/{pdb['metadata']['name']}"
        spec = pdb.get("spec") or {}
        if "maxUnavailable" in spec:
            allowed = scaled(w, spec["maxUnavailable"], 1, True, "spec.maxUnavailable", res)
            have = f"maxUnavailable {spec['maxUnavailable']}"
        elif "minAvailable" in spec:
            allowed = 1 - scaled(w, spec["minAvailable"], 1, True, "spec.minAvailable", res)
            have = f"minAvailable {spec['minAvailable']}"
        else:
            continue
        measured.append(f"{res} {have} -> disruptionsAllowed {max(allowed, 0)}")
        if allowed <= 0:
            parts.append(
                f"{res} ({have}) allows 0 disruptions at 1 replica: it blocks voluntary "
                "evictions forever, so every drain hangs (each eviction gets 429, `kubectl "
                "drain` retries until its --timeout, forever by default; cluster-autoscaler "
                "cannot scale the node down; node upgrades stall), and it does nothing "
                "against involuntary disruption (node crash, zone loss, OOM kill)"
            )
        else:
            parts.append(
                f"{res} ({have}) allows the one eviction: it permits the outage on every "
                "drain, and no PDB helps against involuntary disruption (node crash, zone "
                "loss, OOM kill)"
            )
    return "; ".join(parts), "; ".join(measured)


def single_replica(w: Workload, t: Targets) -> list[Finding]:
    """One replica cannot meet any availability target: every disruption is an outage."""
    floor = _replica_floor(w)
    if floor is None:
        return []
    n, field, resource = floor
    slo = t.profile.slo
    budget = slo.error_budget_minutes_per_30d()
    cold = t.cold_start_p95_s
    tol = _unreachable_toleration_s(w)
    if tol is None:
        node_cost = (
            "a node failure is an outage until the node returns: the pod tolerates "
            f"{UNREACHABLE_TAINT} forever and is never rescheduled"
        )
    elif cold is None:
        node_cost = (
            f"a node failure costs the {tol} s unreachable toleration plus a cold start (unknown)"
        )
    else:
        mins = (tol + cold.value) / 60
        node_cost = (
            f"a single node failure costs at least {mins:.1f} min ({tol} s unreachable "
            f"toleration + {cold.value:g} s cold start p95), "
            f"{100 * mins / budget:.0f} % of the budget"
        )
    covered, rollout = _rollout_cover(w)
    pdb_msg, pdb_measured = _pdb_effect(w)
    events = "every node drain, node failure and zone loss" + (
        "" if covered else ", and every rollout,"
    )
    floor_txt = (f"HPA minReplicas {n}" if resource else f"spec.replicas {n}") + (
        f" (spec.replicas {w.spec_replicas} is only the initial count)"
        if resource and w.spec_replicas > 1
        else ""
    )
    spread = (
        "at least 2 replicas spread over zones"
        if len(t.profile.zones.zones) > 1
        else "at least 2 replicas on different nodes"
    )
    return [
        finding(
            w,
            "single-replica",
            "error",
            field,
            f"one replica: {events} is an outage of the whole service, lasting at least a cold "
            f"start. The availability target {100 * slo.availability:g} % leaves an error budget "
            f"of {budget:.1f} min per 30 days and {node_cost}; nothing bounds how many such "
            f"disruptions a month brings, so one replica cannot meet the target. Rollouts: "
            f"{rollout}. {pdb_msg}",
            resource=resource,
            measured=f"{floor_txt}; {pdb_measured}",
            required=f">= 2 replicas for availability {slo.availability:g} "
            f"({budget:.1f} min of error budget per 30 days)",
            fix=(
                f"run {spread} (topologySpreadConstraints on topology.kubernetes.io/zone, "
                "DoNotSchedule, nodeTaintsPolicy: Honor)"
                + (", and set the HPA's minReplicas to match" if resource else "")
                + "; then a PodDisruptionBudget with maxUnavailable: 1 (or minAvailable: 1, "
                "which at 2+ replicas allows evictions) and unhealthyPodEvictionPolicy: "
                "AlwaysAllow lets drains proceed one pod at a time"
            ),
            basis=f"profile {t.profile.name}: slo.availability"
            + (f"; {cold.basis}" if cold is not None and tol is not None else ""),
        )
    ]


RULES = [single_replica, zone_spread, zone_pinned, zone_capacity, disruption_budget]
