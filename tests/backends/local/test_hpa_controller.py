"""One HPA sync over an in-memory cluster: the shared model's decision applied and recorded."""

from __future__ import annotations

import time
from typing import Any

from cluster_fakes import add_pod, cluster

from harness.backends.local.controllers.hpa_controller import HorizontalPodAutoscalerController

HPA: dict[str, Any] = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "standin"},
    "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "standin"},
        "minReplicas": 3,
        "maxReplicas": 5,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50},
                },
            }
        ],
    },
}


def test_below_min_replicas_the_hpa_scales_up_and_records_the_sync() -> None:
    s = cluster(1)
    add_pod(s, "a", ready=True)
    scaled: list[int] = []
    ctl = HorizontalPodAutoscalerController(
        s,
        HPA,
        period_s=15.0,
        metric_resolution_s=15.0,
        options={},
        scale=scaled.append,
        ready_replicas=lambda: 1,
        metrics_port=lambda: 8000,
    )
    now = time.time()
    ctl.sync(now)
    assert scaled == [3] and ctl.last_scale_time == now
    (rescale,) = [e for e in s.events.list() if e.reason == "SuccessfulRescale"]
    assert rescale.message.startswith("New size: 3") and rescale.involvedObject.name == "standin"
    (sample,) = s.hpa_history
    assert (
        sample.currentReplicas,
        sample.desiredReplicas,
        sample.readyReplicas,
        sample.lastScaleTime,
    ) == (1, 3, 1, now)
