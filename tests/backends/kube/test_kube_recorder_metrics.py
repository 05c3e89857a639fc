"""Item 5 of issue 18: the recorder keeps asking the metrics API through a fresh metrics-server's
503s (its APIService not Available yet), with a capped back-off, and reports the gap."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kube_controllers import FakeControllers
from kube_mock import MockServer, now_rfc3339
from kube_objects import MakeBackend, bundle

from harness.backends.kube.recorder import METRICS_BACKOFF_CAP
from harness.run import evidence

APISERVICE = "v1beta1.metrics.k8s.io"


def wait_for(pred: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = pred()
        if out:
            return out
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def apiservice(available: bool) -> dict[str, Any]:
    cond = {
        "type": "Available",
        "status": "True" if available else "False",
        "reason": "Passed" if available else "MissingEndpoints",
        "message": "all checks passed"
        if available
        else "endpoints for service/metrics-server "
        'in "kube-system" have no addresses with port name "https"',
        "lastTransitionTime": now_rfc3339(),
    }
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": APISERVICE},
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "service": {"name": "metrics-server", "namespace": "kube-system"},
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
        "status": {"conditions": [cond]},
    }


def pod_metrics(pod: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {"name": pod, "namespace": ns},
        "timestamp": now_rfc3339(),
        "window": "15s",
        "containers": [{"name": "inference", "usage": {"cpu": "250m", "memory": "512Mi"}}],
    }


def test_samples_resume_after_503s_and_the_gap_is_reported(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers, tmp_path: Path
) -> None:
    server.call(lambda: server.api.put("APIService", apiservice(available=False)))
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=1))
    b.wait_ready(timeout_s=20)
    pod = b.pods()[0].name
    server.call(lambda: server.api.put("PodMetrics", pod_metrics(pod, b.namespace)))
    n = 4  # the recorder meets this many 503s before metrics-server becomes Available
    wait_for(lambda: len(server.api.aggregated_unavailable) >= n, what=f"{n} metrics polls")
    assert b.resource_samples() == []
    assert [g.recovered_at for g in b.metrics_gaps()] == [None]  # open while unavailable
    t_available = time.time()
    server.call(lambda: server.api.put("APIService", apiservice(available=True)))
    wait_for(b.resource_samples, what="samples after the APIService became Available")
    s = b.resource_samples()[-1]
    assert s.pod == pod and s.cpu_cores == 0.25
    (gap,) = b.metrics_gaps()
    assert gap.failures >= n and gap.statuses == [503] and "service unavailable" in gap.message
    assert gap.recovered_at is not None and gap.recovered_at >= t_available
    assert gap.first_failure <= gap.last_failure <= gap.recovered_at
    # and it keeps polling for the run
    seen = len(b.resource_samples())
    wait_for(lambda: len(b.resource_samples()) > seen, what="later samples")
    # the gap goes into the evidence beside resources.json (the report names it)
    evidence.save_observations(b, tmp_path, append=False)
    (saved,) = json.loads((tmp_path / evidence.METRICS_GAPS).read_text())
    assert saved["failures"] >= n and saved["recovered_at"] is not None


def test_polls_back_off_capped_and_never_stop(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    server.call(lambda: server.api.put("APIService", apiservice(available=False)))
    controllers.start()
    poll = 0.05
    b = make_backend(metrics_poll_s=poll)
    b.deploy(bundle(replicas=1))
    start = len(server.api.aggregated_unavailable)
    time.sleep(3.0)
    polls = len(server.api.aggregated_unavailable) - start
    cap = poll * METRICS_BACKOFF_CAP
    # no back-off: ~60 polls in 3 s; stopped for good: 0; capped back-off: about 3 / cap
    assert 3.0 / cap * 0.5 <= polls <= 3.0 / cap * 1.5 + 4, polls
    (gap,) = b.metrics_gaps()
    assert gap.recovered_at is None and gap.failures >= polls
    assert b.recorder is not None and b.recorder.metrics_available is False


def test_no_apiservice_at_all_is_a_404_gap(
    make_backend: MakeBackend, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=1))
    wait_for(b.metrics_gaps, what="a gap")
    assert b.metrics_gaps()[0].statuses == [404]
