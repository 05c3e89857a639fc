"""Pod deletion on the kubelet side, and garbage collection of finished pods."""

from __future__ import annotations

from cluster_fakes import add_pod, cluster

from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.kubelet.container_starter import limits_policy
from harness.backends.local.kubelet.pod_workers import PodWorkers
from harness.backends.local.kubelet.runtime import ContainerHandle
from harness.backends.local.podspec.pod_template import ContainerSpec


def no_start(pod: LocalPod, c: ContainerSpec) -> ContainerHandle:
    raise AssertionError(f"nothing may start ({pod.name}/{c.name})")


def test_an_unbound_pod_is_gone_at_once_and_collected() -> None:
    s = cluster(1)
    p = add_pod(s, "p", node=None)
    changes: list[int] = []
    workers = PodWorkers(
        s, no_start, "run", jitter=False, backoff_scale=1.0, on_change=lambda: changes.append(1)
    )
    workers.delete("p", None, reason="Evicted")
    assert p.finished and p.deletion is not None and p.reason == "Evicted" and changes
    workers.collect_finished()
    assert "p" not in s.pods and s.gone == [p] and s.find_pod("p") is p


def test_a_bound_pod_without_a_worker_is_left_alone() -> None:
    s = cluster(1)
    p = add_pod(s, "p")
    PodWorkers(s, no_start, "run", jitter=False, backoff_scale=1.0, on_change=lambda: None).delete(
        "p", None
    )
    assert p.deletion is None and not p.finished
    assert (
        PodWorkers(
            s, no_start, "run", jitter=False, backoff_scale=1.0, on_change=lambda: None
        ).freeze("p")
        is None
    )  # no running container


def test_limits_off_on_request_say_so() -> None:
    assert limits_policy("process", False) == (
        False,
        "enforce_limits=False: limits are monitored, not enforced",
    )
