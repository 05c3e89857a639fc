"""PodMetrics for the local HPA, as metrics-server serves them (no processes needed)."""

from __future__ import annotations

from harness.backends.local.controllers.hpa_inputs import pod_metrics_from_samples
from harness.backends.observe import ResourceSample


def _s(t: float, pod: str, cpu_s: float, mem: int = 100) -> ResourceSample:
    return ResourceSample(time=t, pod=pod, cpu_usage_s=cpu_s, memory_bytes=mem)


def test_cpu_is_the_rate_over_one_resolution_and_memory_the_latest() -> None:
    # pod a: idle for 10 s, then busy at 0.5 core; the metric averages over the 15 s window
    samples = [_s(t, "a", 0.5 * max(0, t - 10)) for t in range(0, 31)] + [
        _s(30, "a", 10.0, mem=300)
    ]
    (m,) = pod_metrics_from_samples(samples, {"a": "inference"}, 15.0)
    assert m["metadata"]["name"] == "a" and m["timestamp"] == 30
    assert m["window"] == "15.000s"
    usage = m["containers"][0]["usage"]
    assert m["containers"][0]["name"] == "inference"
    assert usage == {"cpu": "500m", "memory": "300"}  # (10.0 - 2.5) / 15 s


def test_a_pod_read_for_less_than_one_resolution_has_no_metrics_yet() -> None:
    samples = [_s(t, "young", t * 1.0) for t in range(10)] + [
        _s(t, "old", t * 0.25) for t in range(20)
    ]
    out = pod_metrics_from_samples(samples, {"young": "c", "old": "c"}, 15.0)
    assert [m["metadata"]["name"] for m in out] == ["old"]
    assert out[0]["containers"][0]["usage"]["cpu"] == "250m"


def test_counter_reset_and_unknown_pods_are_skipped() -> None:
    samples = [_s(0, "a", 50.0), _s(20, "a", 1.0), _s(0, "gone", 0.0), _s(20, "gone", 5.0)]
    assert pod_metrics_from_samples(samples, {"a": "c"}, 15.0) == []
