"""The self-test matrix: each broken variant has exactly one flaw and must fail its scenario on
the one evidence check named for that flaw (README table), from the run itself.

`explained` lists the other checks of the scenario that the same flaw may also fail (an OOM
kill also cuts the peak load's requests); any other failed or inconclusive check means the
variant failed for a reason other than its flaw, and the self-test fails.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    variant: str  # manifests/broken/<variant>
    scenario: str
    fails_on: str  # the evidence check that must fail
    evidence: str  # what the failing run shows, in words
    explained: frozenset[str] = frozenset()  # checks the same flaw may fail as well
    needs_enforced_limits: bool = False


MATRIX: tuple[Case, ...] = (
    Case(
        "cpu-starved",
        "capacity",
        "replicas_for_baseline",
        "one replica at 150m holds the SLO at no step of the sweep: the baseline needs more "
        "replicas than the Deployment has",
    ),
    Case(
        "memory-limit-too-low",
        "oom-headroom",
        "oom_kills",
        "kernel OOM kill of the replica (OOMKilled / 137, cgroup oom_kill counter)",
        frozenset(
            {
                "rollout_ready",
                "peak_memory_mib",
                "peak_load_valid",
                "peak_load_delivered",
                "overload_valid",
                "overload_volume",
                "overload_shed",
                "overload_unshed_failures",
            }
        ),
        needs_enforced_limits=True,
    ),
    Case(
        "liveness-no-startup",
        "probe-timing",
        "kills_during_start",
        "liveness kills while the model loads: restart loop (Killing / BackOff events)",
        frozenset({"startup_budget_s", "rollout_ready"}),
    ),
    Case(
        "no-readiness",
        "probe-timing",
        "hung_replica_unready_before_kill",
        "traffic reached a replica that could not serve: the hung replica stayed in the endpoints "
        "until liveness killed it (the startup probe still gates the first Ready)",
        frozenset({"requests_while_unready", "not_ready_503"}),
    ),
    Case(
        "maxreplicas-too-low",
        "hpa",
        # not breach_seconds: 2 stuck replicas breached 82 s of a 120 s spike sized a step above
        # their capacity, under the 100 s allowance, which the good overlay's 21-85 s needs
        "first_new_replica_ready_s",
        "no new replica while the spike broke the SLO: the replicas could not grow past "
        "maxReplicas",
        frozenset({"first_scale_decision_s", "breach_seconds"}),
    ),
    Case(
        "no-zone-spread",
        "zone-failure",
        "zones_with_replicas_before",
        "replicas packed in one zone; losing it breaks the SLA and strands the replacements",
        frozenset(
            {
                "sla_recovered_s",
                "replicas_ready_again_s",
                "pending_after",
                "error_budget_burned",
                "drain_fault_landed",
            }
        ),
    ),
    Case(
        "pdb-blocks-drain",
        "zone-failure",
        "drain_completed",
        "the drain is blocked by the disruption budget (Eviction API 429) until its timeout",
    ),
    Case(
        "grace-shorter-than-drain",
        "zone-failure",
        "drain_lost_requests",
        "accepted in-flight requests cut off by SIGKILL when the grace period ends "
        "before the drain",
    ),
    Case(
        "spread-honor-missing",
        "zone-failure",
        "pending_after",
        "replacements stranded Pending after the zone loss (spread counts the dead zone)",
        frozenset({"replicas_ready_again_s"}),
    ),
)
