"""KubeBackend end to end against a mock Kubernetes API server speaking the real HTTP API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kube_controllers import ZONE, FakeControllers
from kube_mock import MockServer
from kube_objects import CTX, MakeBackend, bundle

from harness.backends.base import BackendError, RolloutRestarter
from harness.backends.kube import (
    RUN_ID_LABEL,
    ChaosNotAllowedError,
    ContextNotAllowedError,
    KubeBackend,
)
from harness.backends.observe import FaultKind
from harness.errors import InputError


def wait_for(pred: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_refuses_context_not_allowed(tmp_path: Path, server: MockServer) -> None:
    with pytest.raises(ContextNotAllowedError) as err:
        KubeBackend(
            tmp_path, context="prod-eu", allowed_contexts=["kind-gauntlet"], chaos_allowed=False
        )
    text = str(err.value)
    assert (
        "prod-eu" in text and "kube.allowed_contexts" in text and "--allow-context prod-eu" in text
    )
    assert isinstance(err.value, InputError)
    assert list(server.api) == []  # nothing was contacted


def test_unknown_context_in_kubeconfig_names_the_choices(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
    )
    with pytest.raises(InputError, match="has: a"):
        KubeBackend(
            tmp_path / "w",
            context="b",
            allowed_contexts=["b"],
            chaos_allowed=False,
            kubeconfig=str(kubeconfig),
        )


def test_deploy_rollout_observe_teardown(
    make_backend: MakeBackend,
    server: MockServer,
    controllers: FakeControllers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controllers.oom_pod_index = 0
    controllers.start()
    b = make_backend(run_id="t1")
    caplog.set_level(logging.INFO, logger="harness.backends.kube")
    b.deploy(bundle(replicas=3))
    ns = b.namespace
    assert ns == "gauntlet-t1"
    assert server.api.namespaces[ns]["metadata"]["labels"][RUN_ID_LABEL] == "t1"
    assert f"creating namespace {ns}" in caplog.text  # said before it touched anything
    kinds = sorted(
        o["kind"]
        for o in [
            *server.api.items("Deployment", ns),
            *server.api.items("Service", ns),
            *server.api.items("HorizontalPodAutoscaler", ns),
            *server.api.items("PodDisruptionBudget", ns),
        ]
    )
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]

    status = b.wait_ready(timeout_s=20)
    assert status.readyReplicas == 3 and status.availableReplicas == 3
    dep = b.deployment()
    assert (dep.metadata.name, dep.metadata.namespace, dep.spec.replicas) == (
        "gauntlet-inference",
        ns,
        3,
    )
    assert dep.metadata.generation == 1 and dep.status.observedGeneration == 1

    pods = b.pods()
    assert len(pods) == 3 and all(p.ready for p in pods)
    assert {p.zone for p in pods} == {"zone-a", "zone-b", "zone-c"}
    p0 = pods[0]
    order = [
        p0.first_transition(t) for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    times = [t for t in order if t is not None]
    assert times == order and times == sorted(times)  # all four happened, in this order
    # history kept the not-ready state before Ready (Kubernetes itself keeps only the last one)
    assert any(c.type == "Ready" and c.status == "False" for c in p0.conditionHistory)
    oom = [p for p in pods if p.containerStatuses and p.containerStatuses[0].lastState.terminated]
    assert oom
    terminated = oom[0].containerStatuses[0].lastState.terminated
    assert terminated is not None  # the filter above kept only pods with one
    assert terminated.reason == "OOMKilled"
    assert terminated.exitCode == 137
    assert oom[0].restarts == 1

    reasons = {e.reason for e in b.events()}
    assert {"Scheduled"} <= reasons
    assert all(e.firstTimestamp > 1e9 for e in b.events())
    assert b.events(since=time.time() + 3600) == []

    # samples taken after the Deployment reported Ready (earlier ones may predate it)
    wait_for(
        lambda: len(b.hpa_history()) >= 2 and b.hpa_history()[-1].readyReplicas == 3,
        what="HPA samples",
    )
    h = b.hpa_history()[-1]
    assert h.desiredReplicas == 3 and h.readyReplicas == 3

    zones = {n.zone for n in b.nodes()}
    assert zones == {"zone-a", "zone-b", "zone-c"}

    b.scale(4)
    assert b.wait_ready(replicas=4, timeout_s=20).readyReplicas == 4

    b.teardown()
    assert ns in server.api.deleted_namespaces and server.api.items("Deployment", ns) == []
    b.teardown()  # idempotent


def test_progress_deadline_exceeded_is_a_backend_error_with_reason(
    make_backend: MakeBackend, controllers: FakeControllers
) -> None:
    controllers.stuck = True
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=2))
    with pytest.raises(BackendError) as err:
        b.wait_ready(timeout_s=20)
    assert "ProgressDeadlineExceeded" in str(err.value)
    assert "FailedScheduling" in str(err.value) and "Insufficient nvidia.com/gpu" in str(err.value)


def test_rollout_timeout_names_what_is_missing(
    make_backend: MakeBackend, controllers: FakeControllers
) -> None:
    controllers.ready_after_ticks = 10**9  # pods never become Ready
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=2))
    with pytest.raises(BackendError, match=r"0 ready / 0 available of 2"):
        b.wait_ready(timeout_s=1.5)


def test_failed_apply_cleans_up_namespace(make_backend: MakeBackend, server: MockServer) -> None:
    b = make_backend()
    bad = bundle()
    bad.objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gauntlet-inference"},
            "spec": {},
        }
    )  # a second Service with the same name: 409 from the server
    with pytest.raises(BackendError, match="Service/gauntlet-inference"), b:
        b.deploy(bad)
    assert b.namespace in server.api.deleted_namespaces
    assert server.api.items("Deployment", b.namespace) == []


def test_cluster_scoped_objects_are_refused(make_backend: MakeBackend, server: MockServer) -> None:
    b = make_backend()
    bad = bundle()
    bad.objects.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "x"}})
    with pytest.raises(InputError, match="Node/x"):
        b.deploy(bad)
    assert server.api.namespaces == {}


def test_chaos_refused_unless_allowed(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend(chaos_allowed=False)
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    pod = b.pods()[0].name
    for action in (
        lambda: b.zone_outage("zone-a"),
        lambda: b.drain_zone("zone-a"),
        lambda: b.delete_pod(pod),
        lambda: b.hang_pod(pod),
    ):
        with pytest.raises(ChaosNotAllowedError, match=r"kube\.chaos_allowed"):
            action()
    assert not any(n.unschedulable or n.taints for n in b.nodes())
    assert server.api.get("Pod", b.namespace, pod) is not None


def test_zone_outage_taints_evicts_and_restores(
    make_backend: MakeBackend,
    server: MockServer,
    controllers: FakeControllers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controllers.start()
    b = make_backend(zone_outage_mode="taint")  # explicit: the default evicts, never taints
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    in_a = [p.name for p in b.pods() if p.zone == "zone-a"]
    assert in_a
    caplog.set_level(logging.INFO, logger="harness.backends.kube")
    rec = b.zone_outage("zone-a")
    assert "node-zone-a-0" in caplog.text and "zone outage" in caplog.text
    assert rec.landed and rec.kind == "zone-outage" and rec.target == "zone-a"
    assert "node-zone-a-0" in rec.affected and set(in_a) <= set(rec.affected)
    node_a = next(n for n in b.nodes() if n.name == "node-zone-a-0")
    assert node_a.unschedulable and any(t.effect == "NoExecute" for t in node_a.taints)
    # the replacement lands in the healthy zones
    b.wait_ready(timeout_s=20)
    assert all(p.zone != "zone-a" for p in b.pods())

    restored = b.restore_zone("zone-a")
    assert restored.landed and restored.affected == ["node-zone-a-0"]
    node_a = next(n for n in b.nodes() if n.name == "node-zone-a-0")
    assert not node_a.unschedulable and not node_a.taints


def test_drain_reports_pdb_429_and_restores_on_teardown(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    msg = "Cannot evict pod as it would violate the pod's disruption budget."
    server.api.eviction_policy = lambda ns, name: (429, msg)
    b = make_backend()
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    rec = b.drain_zone("zone-b", timeout_s=0.5)
    assert not rec.landed and rec.kind == "drain"
    assert "429" in rec.detail and msg in rec.detail
    in_b = [p.name for p in b.pods() if p.zone == "zone-b"]
    assert rec.evictions_blocked == in_b and rec.eviction_429s >= 2  # retried like kubectl drain
    assert all(code == 429 for _, _, code in server.api.evictions)
    assert next(n for n in b.nodes() if n.name == "node-zone-b-0").unschedulable

    server.api.eviction_policy = None  # budget allows now
    rec = b.drain_zone("zone-c", timeout_s=5)
    assert rec.landed and "evicted 1/1" in rec.detail
    assert rec.evictions_blocked == [] and rec.eviction_429s == 0

    ns = b.namespace
    b.teardown()  # restores every node it cordoned and deletes the namespace
    nodes = {n["metadata"]["name"]: n for n in server.api.items("Node")}
    assert not any((n.get("spec") or {}).get("unschedulable") for n in nodes.values())
    assert ns in server.api.deleted_namespaces


def test_node_cordoned_by_someone_else_stays_cordoned(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    server.call(
        lambda: server.api.put(
            "Node", {"metadata": {"name": "node-zone-c-0"}, "spec": {"unschedulable": True}}
        )
    )
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=2, pdb_min_available=None))
    b.wait_ready(timeout_s=20)
    b.drain_zone("zone-c", timeout_s=2)
    b.teardown()
    node = server.api.get("Node", None, "node-zone-c-0")
    assert node is not None
    assert node["spec"]["unschedulable"] is True


def test_unknown_zone_names_the_zones(
    make_backend: MakeBackend, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=1))
    with pytest.raises(BackendError, match="zones present: zone-a, zone-b, zone-c"):
        b.zone_outage("zone-x")


def test_delete_pod_records_fault(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=2))
    b.wait_ready(timeout_s=20)
    victim = b.pods()[0].name
    rec = b.delete_pod(victim, grace_period_s=0)
    assert rec.landed and rec.affected == [victim] and rec.kind == "kill-pod"
    assert any(
        r.method == "DELETE" and r.params.get("gracePeriodSeconds") == "0" for r in server.api
    )


def test_pods_include_deleted_gives_the_last_state_seen(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=2))
    b.wait_ready(timeout_s=20)
    victim = b.pods()[0]
    assert b.delete_pod(victim.name, grace_period_s=0).landed
    wait_for(lambda: len([p for p in b.pods() if p.ready]) == 2, what="the replacement pod")
    live = {p.name for p in b.pods()}
    assert victim.name not in live and len(live) == 2
    everything = {p.name: p for p in b.pods(include_deleted=True)}
    assert set(everything) == live | {victim.name}
    gone = everything[victim.name]
    assert gone.ready and gone.zone == victim.zone  # as last seen, before it vanished
    assert any(c.type == "Ready" and c.status == "False" for c in gone.conditionHistory)


def test_drain_mode_zone_outage_is_a_zone_outage_record(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend(zone_outage_mode="drain")
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    rec = b.zone_outage("zone-a")
    assert rec.kind is FaultKind.ZONE_OUTAGE and rec.landed
    assert rec.evictions_blocked == [] and rec.eviction_429s == 0
    assert rec.model_dump(mode="json")["kind"] == "zone-outage"


def test_nodes_carry_allocatable_as_quantities(
    make_backend: MakeBackend, server: MockServer
) -> None:
    b = make_backend()
    node = next(n for n in b.nodes() if n.name == "node-zone-a-0")
    assert node.allocatable == {"cpu": "4", "memory": "8Gi"} and node.capacity == {}
    assert node.zone == "zone-a" and node.ready


def test_kube_backend_can_rollout_restart() -> None:
    assert issubclass(KubeBackend, RolloutRestarter)


def test_metrics_api_feeds_resource_samples(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=1))
    b.wait_ready(timeout_s=20)
    pod = b.pods()[0].name
    recorder = b.recorder
    assert recorder is not None  # deploy started it

    def add_metrics() -> None:
        server.api.metrics = True
        server.api.put(
            "PodMetrics",
            {
                "apiVersion": "metrics.k8s.io/v1beta1",
                "kind": "PodMetrics",
                "metadata": {"name": pod, "namespace": b.namespace},
                "timestamp": "2026-01-01T00:00:00Z",
                "window": "15s",
                "containers": [{"name": "inference", "usage": {"cpu": "250m", "memory": "512Mi"}}],
            },
        )

    recorder.metrics_available = None  # as if metrics-server just came up
    server.call(add_metrics)
    wait_for(lambda: b.resource_samples(), what="metrics samples")
    s = b.resource_samples()[-1]
    assert s.pod == pod and s.cpu_cores == 0.25 and s.memory_bytes == 512 * 2**20
    assert s.cpu_request_cores == 0.5 and s.memory_limit_bytes == 2**30
    assert (
        recorder.cadvisor_available is False and s.cpu_periods is None
    )  # no nodes/proxy: no CFS counters

    # cAdvisor through the API server's node proxy: CFS counters summed over the pod's containers
    node = b.pods()[0].nodeName
    assert node is not None  # a Ready pod is bound
    ns = b.namespace
    server.api.cadvisor[node] = "\n".join(
        [
            "# TYPE container_cpu_cfs_periods_total counter",
            'container_cpu_cfs_periods_total{container="inference",'
            f'namespace="{ns}",pod="{pod}"}} 1000',
            'container_cpu_cfs_periods_total{container="proxy",'
            f'namespace="{ns}",pod="{pod}"}} 500',
            f'container_cpu_cfs_periods_total{{container="",namespace="{ns}",pod="{pod}"}} 9999',
            'container_cpu_cfs_periods_total{container="inference",'
            f'namespace="other",pod="{pod}"}} 7',
            "# TYPE container_cpu_cfs_throttled_periods_total counter",
            'container_cpu_cfs_throttled_periods_total{container="inference",'
            f'namespace="{ns}",pod="{pod}"}} 300',
            "# TYPE container_cpu_cfs_throttled_seconds_total counter",
            'container_cpu_cfs_throttled_seconds_total{container="inference",'
            f'namespace="{ns}",pod="{pod}"}} 12.5',
            "",
        ]
    )
    recorder.cadvisor_available = None
    wait_for(lambda: b.resource_samples()[-1].cpu_periods is not None, what="CFS counters")
    s = b.resource_samples()[-1]
    assert (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_s) == (1500, 300, 12.5)


def test_no_metrics_api_means_no_samples(
    make_backend: MakeBackend, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=1))
    b.wait_ready(timeout_s=20)
    recorder = b.recorder
    assert recorder is not None  # deploy started it
    wait_for(lambda: recorder.metrics_available is False, what="metrics probe")
    assert b.resource_samples() == []


def test_zone_label_constant_is_the_well_known_one() -> None:
    assert ZONE == "topology.kubernetes.io/zone" and CTX


def test_sigterm_restores_nodes_and_deletes_namespace(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    import signal

    from harness.backends.signal_cleanup import CLEANUP

    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    b.zone_outage("zone-a")
    prev = CLEANUP._previous.pop(
        signal.SIGTERM, None
    )  # no previous handler: exit 128+15 like SIGTERM
    try:
        with pytest.raises(SystemExit) as err:
            CLEANUP._on_signal(signal.SIGTERM, None)
    finally:
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
    assert err.value.code == 143
    assert b.namespace in server.api.deleted_namespaces
    node_a = server.api.get("Node", None, "node-zone-a-0")
    assert node_a is not None
    assert not (node_a.get("spec") or {}).get("unschedulable") and not (
        node_a.get("spec") or {}
    ).get("taints")
