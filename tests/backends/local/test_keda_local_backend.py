"""LocalBackend runs a bundle with a KEDA ScaledObject (real stand-in processes): the generated
HPA reads the External metric from the replicas' /metrics, and KEDA's operator deactivates the
idle workload to zero once initialCooldownPeriod has passed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from standin_specs import bundle, deployment

from harness.backends.local import LocalBackend

pytestmark = pytest.mark.timeout(120)

SCALED_OBJECT = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "standin"},
    "spec": {
        "scaleTargetRef": {"name": "standin"},
        "pollingInterval": 1,
        "initialCooldownPeriod": 6,
        "maxReplicaCount": 3,
        "triggers": [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": "http://prometheus:9090",
                    "query": 'sum(vllm:num_requests_running{pod=~"standin-.*"})',
                    "threshold": "1",
                },
            }
        ],
    },
}


def test_keda_runs_on_the_local_backend(tmp_path: Path) -> None:
    with LocalBackend(
        tmp_path, probe_jitter=False, hpa_sync_period_s=1.0, metric_resolution_s=2.0
    ) as b:
        start = time.time()
        b.deploy(bundle(deployment(replicas=1), SCALED_OBJECT))
        b.wait_ready(timeout_s=60)
        b.wait_until(
            lambda: any(
                m.get("type") == "External" for h in b.hpa_history() for m in h.currentMetrics
            ),
            30,
            what="the HPA reading s0-prometheus",
        )
        ext = next(
            m for h in b.hpa_history() for m in h.currentMetrics if m.get("type") == "External"
        )
        assert ext["external"]["metric"]["name"] == "s0-prometheus"
        assert ext["external"]["current"] == {"averageValue": "0"}  # nothing in flight
        b.wait_until(lambda: b.deployment().spec.replicas == 0, 30, what="KEDA to deactivate")
        (ev,) = [e for e in b.events() if e.reason == "KEDAScaleTargetDeactivated"]
        assert ev.involvedObject.kind == "ScaledObject" and ev.source == "keda-operator"
        assert ev.firstTimestamp - start >= 6  # not before initialCooldownPeriod
        assert "from 1 to 0" in ev.message
