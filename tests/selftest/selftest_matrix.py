"""The self-test matrix: which broken variant must fail which scenario, and on which checks.

A variant passes the self-test only when its scenario's verdict is `fail` AND at least one of
the listed checks failed: the evidence must come from the run (the kernel OOM kill, the restart
loop, the stranded zone...), not from any failure at all. Documented as a table in docs/scenarios.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    variant: str  # manifests/broken/<variant>
    scenario: str
    evidence_checks: tuple[str, ...]  # at least one of these must be among the failed checks
    evidence: str  # what the failing run shows, in words
    needs_enforced_limits: bool = False


MATRIX: tuple[Case, ...] = (
    Case("memory-limit-too-low", "oom-headroom", ("oom_kills", "peak_memory_mib"),
         "kernel OOM kill of the replica (OOMKilled / 137, cgroup oom_kill counter)",
         needs_enforced_limits=True),
    Case("liveness-no-startup", "probe-timing", ("kills_during_start", "rollout_ready"),
         "liveness kills while the model loads: restart loop (Killing / BackOff events)"),
    Case("no-readiness", "probe-timing",
         ("requests_while_unready", "not_ready_503", "hung_replica_unready_before_kill"),
         "traffic reached a replica that could not serve (the hung replica stayed in the endpoints)"),
    Case("maxreplicas-too-low", "hpa", ("breach_seconds", "max_replicas_reached"),
         "SLA-breach seconds during the spike; maxReplicas below the replicas needed"),
    Case("no-zone-spread", "zone-failure",
         ("zones_with_replicas_before", "sla_recovered_s", "replicas_ready_again_s", "error_budget_burned"),
         "replicas packed in one zone; losing it breaks the SLA"),
    Case("pdb-blocks-drain", "zone-failure", ("drain_completed",),
         "the drain is blocked by the disruption budget (Eviction API 429) until its timeout"),
    Case("grace-shorter-than-drain", "zone-failure", ("drain_lost_requests",),
         "accepted in-flight requests cut off when the grace period ends before the drain"),
    Case("spread-honor-missing", "zone-failure", ("pending_after", "replicas_ready_again_s"),
         "replacements stranded Pending after the zone loss (spread counts the dead zone)"),
)
