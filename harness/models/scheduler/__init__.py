"""kube-scheduler model, laid out like pkg/scheduler (framework/plugins and schedule_one.go).

* predicates.py         nodeunschedulable, tainttoleration, nodeaffinity (filters)
* resources.py          noderesources: Fit filter, LeastAllocated score
* topology_spread.py    podtopologyspread: PreFilter + Filter, Score, default constraints
* interpod_affinity.py  interpodaffinity: Filter, Score
* schedule_one.py       schedule_one.go: filters in order, weighted scores, one pod -> a node
* placement.py          N replicas of a workload, and the zone failure what-if
"""

from harness.models.scheduler.interpod_affinity import (
    R_EXISTING_ANTI_AFFINITY,
    R_POD_AFFINITY,
    R_POD_ANTI_AFFINITY,
    existing_pod,
    has_inter_pod_terms,
)
from harness.models.scheduler.placement import (
    Placement,
    ZoneFailure,
    fail_zone_nodes,
    place,
    zone_failure,
)
from harness.models.scheduler.predicates import (
    R_AFFINITY,
    R_UNSCHEDULABLE,
    node_affinity_matches,
    untolerated_taint,
)
from harness.models.scheduler.resources import (
    DEFAULT_MAX_PODS,
    R_TOO_MANY,
    node_allocatable,
    pod_requests,
)
from harness.models.scheduler.schedule_one import schedule_pod
from harness.models.scheduler.topology_spread import (
    HOSTNAME_KEY,
    MAX_NODE_SCORE,
    R_SPREAD,
    R_SPREAD_LABEL,
    ZONE_KEY,
    Constraint,
    default_constraints,
    parse_constraints,
    spread_filter,
)

__all__ = [
    "DEFAULT_MAX_PODS",
    "HOSTNAME_KEY",
    "MAX_NODE_SCORE",
    "R_AFFINITY",
    "R_EXISTING_ANTI_AFFINITY",
    "R_POD_AFFINITY",
    "R_POD_ANTI_AFFINITY",
    "R_SPREAD",
    "R_SPREAD_LABEL",
    "R_TOO_MANY",
    "R_UNSCHEDULABLE",
    "ZONE_KEY",
    "Constraint",
    "Placement",
    "ZoneFailure",
    "default_constraints",
    "existing_pod",
    "fail_zone_nodes",
    "has_inter_pod_terms",
    "node_affinity_matches",
    "node_allocatable",
    "parse_constraints",
    "place",
    "pod_requests",
    "schedule_pod",
    "spread_filter",
    "untolerated_taint",
    "zone_failure",
]
