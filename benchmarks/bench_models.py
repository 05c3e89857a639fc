"""Time the models: 1 h of 15 s HPA syncs at up to 100 replicas, probes, spread placement.

Ratio baseline (same run): the cost of one bare reconcile of 100 pods, so the simulation cost is
reported as "reconciles' worth" and is comparable across machines. Writes
reports/bench/models.json."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.models.hpa import HPAController, simulate
from harness.models.prober import analyze
from harness.models.scheduler import place, zone_failure

HPA = {
    "spec": {
        "minReplicas": 2,
        "maxReplicas": 100,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 65},
                },
            }
        ],
    }
}


def best_of(fn, n=3):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def one_reconcile():
    pods = [
        {
            "metadata": {"name": f"p{i}"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
            "status": {
                "phase": "Running",
                "startTime": 0.0,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": 1.0}],
            },
        }
        for i in range(100)
    ]
    pm = [
        {
            "metadata": {"name": f"p{i}"},
            "timestamp": 999.0,
            "window": 15.0,
            "containers": [{"name": "c", "usage": {"cpu": "700m"}}],
        }
        for i in range(100)
    ]
    HPAController(HPA).reconcile(1000.0, spec_replicas=100, pods=pods, pod_metrics=pm)


def main() -> None:
    base = best_of(one_reconcile, 5)
    sim = best_of(
        lambda: simulate(
            HPA,
            traffic=[(0, 50), (600, 480), (2400, 50)],
            capacity_per_replica=5,
            cold_start_s=90,
            duration_s=3600,
        )
    )
    nodes = [
        {
            "metadata": {"name": f"n{i}", "labels": {"topology.kubernetes.io/zone": f"z{i % 3}"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi"}},
        }
        for i in range(30)
    ]
    dep = {
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "labelSelector": {"matchLabels": {"app": "x"}},
                        }
                    ],
                },
            }
        }
    }
    spread = best_of(lambda: place(dep, nodes, 100), 1)
    zf = best_of(lambda: zone_failure(dep, nodes, 60, "z0"), 1)
    probes = best_of(
        lambda: analyze(
            {"containers": [{"name": "c", "startupProbe": {"failureThreshold": 30}}]},
            None,
            [float(i) for i in range(1000)],
        )
    )
    result = {
        "reconcile_100_pods_s": base,
        "simulate_1h_15s_100_replicas_s": sim,
        "simulate_over_reconcile_ratio": sim / base,
        "spread_place_100_on_30_nodes_s": spread,
        "zone_failure_60_on_30_nodes_s": zf,
        "probes_1000_samples_s": probes,
    }
    for k, v in result.items():
        print(f"{k:40s} {v:10.4f}")
    out = Path("reports/bench/models.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
