"""HorizontalPodAutoscaler model, laid out like pkg/controller/podautoscaler.

* controller.py       horizontal.go: reconcileAutoscaler, conditions, status  (`HPAController`)
* metrics.py          horizontal.go: computeReplicasForMetric(s), computeStatusFor*Metric
* behavior.py         horizontal.go: normalization, stabilization, rate limits, scale events
* replica_calculator.py  replica_calculator.go (+ metrics/utilization.go)
* metrics_client.py   metrics/client.go, interfaces.go: PodMetrics, custom/external metric lists
* config.py           config/types.go: the kube-controller-manager HPA settings
* simulate.py         the sync loop against a traffic profile (no upstream counterpart)
"""

from harness.models.hpa.behavior import (
    convert_desired_replicas_with_rules,
    get_replicas_change_per_period,
    scale_down_limit_with_rules,
    scale_up_limit_with_rules,
)
from harness.models.hpa.config import CONTROLLER_SETTINGS, controller_options
from harness.models.hpa.controller import HPAController, HPADecision
from harness.models.hpa.metrics_client import (
    CustomMetrics,
    PodMetric,
    parse_custom_metrics,
    resource_pod_metrics,
)
from harness.models.hpa.replica_calculator import MetricError, ReplicaCalculator, Tolerances
from harness.models.hpa.simulate import SimResult, simulate

__all__ = [
    "CONTROLLER_SETTINGS",
    "CustomMetrics",
    "HPAController",
    "HPADecision",
    "MetricError",
    "PodMetric",
    "ReplicaCalculator",
    "SimResult",
    "Tolerances",
    "controller_options",
    "convert_desired_replicas_with_rules",
    "get_replicas_change_per_period",
    "parse_custom_metrics",
    "resource_pod_metrics",
    "scale_down_limit_with_rules",
    "scale_up_limit_with_rules",
    "simulate",
]
