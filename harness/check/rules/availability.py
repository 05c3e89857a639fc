"""Availability rules: zone spread that survives a zone loss, N-1 zones carry the load, PDBs
that let drains proceed."""

from __future__ import annotations

import math

from harness.check.findings import Finding
from harness.check.rules._base import finding
from harness.check.targets import Targets
from harness.check.whatif import zone_loss
from harness.check.workload import POD_SPEC, Workload, scaled

ZONE_KEY = "topology.kubernetes.io/zone"
TSC = f"{POD_SPEC}.topologySpreadConstraints"


def _zone_constraints(w: Workload) -> list[tuple[int, dict]]:
    return [(i, c) for i, c in enumerate(w.pod_spec.get("topologySpreadConstraints") or [])
            if c.get("topologyKey") == ZONE_KEY]


def _zone_anti_affinity(w: Workload) -> bool:
    anti = ((w.pod_spec.get("affinity") or {}).get("podAntiAffinity") or {})
    return any(t.get("topologyKey") == ZONE_KEY
               for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _zone_anti_affinity_findings(w: Workload, t: Targets) -> list[Finding]:
    """Required per-zone anti-affinity spreads, but allows one replica per zone: the HPA cannot
    grow past the zone count, and a lost zone's replica has nowhere to go."""
    zones = t.profile.zones.zones
    where = f"{POD_SPEC}.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    fix = ("spread with topologySpreadConstraints (maxSkew: 1, topologyKey: topology.kubernetes.io/zone, "
           "whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor) or make the anti-affinity preferred")
    out: list[Finding] = []
    if w.max_replicas > len(zones):
        out.append(finding(
            w, "zone-anti-affinity-caps-replicas", "error", where,
            f"required zone anti-affinity allows one replica per zone: replicas beyond {len(zones)} "
            "stay Pending (\"didn't match pod anti-affinity rules\"), so the autoscaler cannot add capacity",
            measured=f"max {w.max_replicas} replicas, {len(zones)} zones",
            required=f"at most {len(zones)} replicas, or no per-zone exclusivity", fix=fix))
    loss = zone_loss(w.obj, min(w.steady_replicas, len(zones)), zones, t.profile.zones.nodes_per_zone)
    if loss.stranded:
        out.append(finding(
            w, "zone-anti-affinity-strands", "error", where,
            "after a zone loss the lost replica cannot be placed again: every surviving zone "
            "already holds one", measured=f"{loss.stranded} of {loss.lost} replicas from the lost zone "
            "stay Pending", required="every lost replica rescheduled in the surviving zones",
            fix=fix, basis=loss.engine))
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
        return [finding(
            w, "zone-spread-missing", "error", TSC,
            f"nothing spreads the {n} replicas over zones: the scheduler may put all of them "
            "in one zone, and losing it takes the whole service down",
            measured="no topologySpreadConstraints on topology.kubernetes.io/zone",
            required=f"replicas spread over {len(zones)} zones",
            fix="add topologySpreadConstraints: [{maxSkew: 1, topologyKey: "
                "topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, "
                "nodeTaintsPolicy: Honor, labelSelector: <pod labels>}]")]
    out: list[Finding] = []
    hard = [(i, c) for i, c in cons if c.get("whenUnsatisfiable", "DoNotSchedule")
            == "DoNotSchedule"]
    if not hard:
        out.append(finding(
            w, "zone-spread-soft", "warning", f"{TSC}[{cons[0][0]}].whenUnsatisfiable",
            "zone spreading is ScheduleAnyway only: a preference blended with other scores, so "
            "replicas can still pile into one zone",
            measured="whenUnsatisfiable: ScheduleAnyway", required="DoNotSchedule with "
            "nodeTaintsPolicy: Honor", fix="use whenUnsatisfiable: DoNotSchedule and "
            "nodeTaintsPolicy: Honor"))
    for i, c in hard:
        if c.get("nodeTaintsPolicy", "Ignore") == "Honor":
            continue
        loss = zone_loss(w.obj, n, zones, t.profile.zones.nodes_per_zone)
        out.append(finding(
            w, "zone-spread-taints-ignored", "error", f"{TSC}[{i}].nodeTaintsPolicy",
            "DoNotSchedule zone spread with nodeTaintsPolicy Ignore (the default): after a zone "
            "dies its tainted nodes still count as a domain with 0 pods, so replacements of "
            "the lost replicas stay Pending (\"didn't match pod topology spread constraints\")",
            measured=f"{loss.stranded} of {loss.lost} replicas from the lost zone cannot be "
                     f"placed again ({n} replicas over {len(zones)} zones)",
            required="every lost replica rescheduled in the surviving zones",
            fix="set nodeTaintsPolicy: Honor on the constraint", basis=loss.engine))
    return out


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
        return [finding(
            w, "zone-capacity", "error", "spec.replicas" if w.hpa is None else "spec.minReplicas",
            f"{n} replica(s) over {len(zones)} zones: losing one zone leaves none",
            resource=None if w.hpa is None else
            f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}",
            measured=f"{survivors} replicas after the loss", required=">= 1",
            fix=f"run at least {len(zones)} replicas")]
    if cap is None:
        return [finding(w, "zone-capacity", "info", "spec.replicas",
                        "per-replica capacity unknown: N-1 zone capacity not checked",
                        fix="pass --measured report.json")]
    if survivors * cap.value < base:
        need = math.ceil(base / cap.value)
        min_total = need + math.ceil(need / (len(zones) - 1))
        return [finding(
            w, "zone-capacity", "error", "spec.minReplicas" if w.hpa else "spec.replicas",
            "after losing one zone the surviving replicas cannot carry the baseline load "
            "until new ones are Ready",
            resource=f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}" if w.hpa else None,
            measured=f"{survivors} replicas x {cap.value:g} rps = {survivors * cap.value:g} rps",
            required=f">= baseline {base:g} rps",
            fix=f"raise minReplicas to about {min_total}", basis=cap.basis)]
    return []


def disruption_budget(w: Workload, t: Targets) -> list[Finding]:
    n = w.steady_replicas
    if n < 2:
        return []
    if not w.pdbs:
        return [finding(
            w, "pdb-missing", "warning", "metadata",
            "no PodDisruptionBudget selects these pods: a node drain or cluster upgrade may "
            "evict every replica at once",
            measured="no PodDisruptionBudget", required="a PDB allowing 1 disruption",
            fix="add a policy/v1 PodDisruptionBudget with maxUnavailable: 1 and "
                "unhealthyPodEvictionPolicy: AlwaysAllow")]
    out: list[Finding] = []
    if len(w.pdbs) > 1:
        out.append(finding(
            w, "pdb-multiple", "error", "metadata.labels",
            "several PodDisruptionBudgets select these pods: the Eviction API answers 500 and "
            "no drain can evict them", measured=", ".join(p["metadata"]["name"] for p in w.pdbs),
            required="exactly one PDB", fix="keep one PDB per workload"))
    for pdb in w.pdbs:
        res = f"PodDisruptionBudget/{pdb['metadata']['name']}"
        spec = pdb.get("spec") or {}
        if "maxUnavailable" in spec:
            allowed = scaled(spec["maxUnavailable"], n, round_up=True)
            field, have = "spec.maxUnavailable", f"maxUnavailable {spec['maxUnavailable']}"
        elif "minAvailable" in spec:
            allowed = n - scaled(spec["minAvailable"], n, round_up=True)
            field, have = "spec.minAvailable", f"minAvailable {spec['minAvailable']}"
        else:
            continue
        if allowed <= 0:
            out.append(finding(
                w, "pdb-blocks-drain", "error", field,
                f"with all {n} replicas healthy the budget allows 0 disruptions: every "
                "eviction gets 429 and node drains (upgrades, zone maintenance) hang forever",
                resource=res, measured=f"{have} -> disruptionsAllowed 0 at {n} replicas",
                required="disruptionsAllowed >= 1", fix="set maxUnavailable: 1"))
        elif spec.get("unhealthyPodEvictionPolicy", "IfHealthyBudget") != "AlwaysAllow":
            out.append(finding(
                w, "pdb-unhealthy-policy", "info", "spec.unhealthyPodEvictionPolicy",
                "pods still loading (Running, not Ready) can be evicted only while the budget "
                "is intact: a slow cold start can stall drains", resource=res,
                measured=spec.get("unhealthyPodEvictionPolicy", "IfHealthyBudget (default)"),
                required="AlwaysAllow", fix="set unhealthyPodEvictionPolicy: AlwaysAllow"))
    return out


RULES = [zone_spread, zone_capacity, disruption_budget]
