"""Item 8 of issue 18: zone outage against the strict mock (resourceVersion preconditions).

Fresh reads and 409 retries for cordon, taint and restore; the default outage evicts only the
run's own pods through the Eviction API; taints are explicit and list other tenants first; a
dry run lists every pod it would touch and changes nothing."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from kube_controllers import FakeControllers
from kube_mock import MockServer
from kube_objects import CTX, MakeBackend, bundle
from kubernetes import client

from harness.backends.kube import zones
from harness.backends.kube.api import KubeApi, KubeApiError, resource_path

NODE_A = "node-zone-a-0"
ROOT = Path(__file__).resolve().parents[3]


def _api(server: MockServer) -> KubeApi:
    return KubeApi(client.ApiClient(client.Configuration(host=server.url)))


def _tenant_pod(name: str, ns: str, node: str, tolerations: list[Any] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"k8s-app": name}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": name, "image": "x"}],
            **({"tolerations": tolerations} if tolerations else {}),
        },
        "status": {"phase": "Running"},
    }


def _add_tenants(server: MockServer) -> None:
    """What kind runs on a node besides us: CoreDNS and metrics-server in kube-system, and a
    DaemonSet-like pod tolerating every taint."""

    def add() -> None:
        server.api.put("Pod", _tenant_pod("coredns-abc", "kube-system", NODE_A))
        server.api.put("Pod", _tenant_pod("metrics-server-xyz", "kube-system", NODE_A))
        server.api.put(
            "Pod",
            _tenant_pod("kindnet-123", "kube-system", NODE_A, [{"operator": "Exists"}]),
        )

    server.call(add)


def _node(server: MockServer, name: str = NODE_A) -> dict:
    node = server.api.get("Node", None, name)
    assert node is not None
    return node


def test_old_cordon_then_taint_with_the_pre_cordon_version_gets_409(server: MockServer) -> None:
    """The old code path: list the zone's nodes, cordon, then taint with the resourceVersion of
    the list (read before the cordon). The strict mock answers it as the apiserver does."""
    api = _api(server)
    node = zones.zone_nodes(api, "zone-a")[0]
    path = resource_path("v1", "Node", name=NODE_A)
    api.merge_patch(path, {"spec": {"unschedulable": True}})  # the cordon: a new version
    stale = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}}
    taint = {"key": zones.OUTAGE_TAINT_KEY, "value": "zone-a", "effect": "NoExecute"}
    with pytest.raises(KubeApiError) as err:
        api.merge_patch(path, {**stale, "spec": {"taints": [taint]}})
    assert err.value.status == 409 and err.value.reason == "Conflict"
    assert "the object has been modified" in err.value.message
    # today's NodeChanges reads fresh before each write: the same sequence lands
    changes = zones.NodeChanges()
    changes.taint(api, node, "zone-a")  # `node` is the stale list entry: only its name is used
    assert [t["key"] for t in _node(server)["spec"]["taints"]] == [zones.OUTAGE_TAINT_KEY]


def test_taint_retries_when_the_node_changes_between_read_and_write(server: MockServer) -> None:
    api = _api(server)
    server.api.concurrent_writes[("Node", NODE_A)] = 2  # a kubelet heartbeat after each read
    changes = zones.NodeChanges()
    changes.cordon(api, NODE_A)  # no list replaced: a plain merge patch, yet read-fresh too
    changes.taint(api, NODE_A, "zone-a")
    assert len(server.api.conflicts) >= 1  # at least one attempt met 409 and was retried
    node = _node(server)
    assert node["spec"]["unschedulable"] is True
    assert any(t["key"] == zones.OUTAGE_TAINT_KEY for t in node["spec"]["taints"])


def test_conflict_retries_are_bounded(server: MockServer) -> None:
    api = _api(server)
    server.api.concurrent_writes[("Node", NODE_A)] = 1000  # a node that never settles
    with pytest.raises(KubeApiError) as err:
        zones.NodeChanges().taint(api, NODE_A, "zone-a")
    assert err.value.status == 409
    assert len(server.api.conflicts) == zones.CONFLICT_ATTEMPTS


def test_restore_retries_through_a_409_and_keeps_others_taints(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend(zone_outage_mode="taint")
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    assert b.zone_outage("zone-a").landed
    # someone else taints the node while it is out; then the node keeps changing under restore
    other = {"key": "example.com/maintenance", "value": "x", "effect": "NoSchedule"}
    node = _node(server)
    server.call(
        lambda: server.api.put(
            "Node",
            {"metadata": {"name": NODE_A}, "spec": {"taints": [*node["spec"]["taints"], other]}},
        )
    )
    server.api.conflicts.clear()
    server.api.concurrent_writes[("Node", NODE_A)] = 2
    rec = b.restore_zone("zone-a")
    assert rec.landed and rec.affected == [NODE_A], rec.detail
    assert server.api.conflicts, "the restore never met a 409: the test did not exercise a retry"
    spec = _node(server).get("spec") or {}
    assert not spec.get("unschedulable")
    assert spec.get("taints") == [other]  # only ours removed


def test_default_outage_evicts_only_our_pods_through_the_eviction_api(
    make_backend: MakeBackend,
    server: MockServer,
    controllers: FakeControllers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controllers.start()
    _add_tenants(server)
    b = make_backend()
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    ours = [p.name for p in b.pods() if p.zone == "zone-a"]
    assert ours
    caplog.set_level(logging.WARNING, logger="harness.backends.kube")
    rec = b.zone_outage("zone-a")
    assert rec.landed and rec.kind == "zone-outage", rec.detail
    assert {(ns, name) for ns, name, _ in server.api.evictions} == {(b.namespace, p) for p in ours}
    kube_system = {p["metadata"]["name"] for p in server.api.items("Pod", "kube-system")}
    assert kube_system == {"coredns-abc", "metrics-server-xyz", "kindnet-123"}  # untouched
    node = _node(server)
    assert node["spec"]["unschedulable"] is True and not node["spec"].get("taints")
    assert "kube-system/coredns-abc" in caplog.text and "untouched" in caplog.text
    assert "3 pod(s) of other namespaces on those nodes untouched" in rec.detail
    b.wait_ready(timeout_s=20)
    assert all(p.zone != "zone-a" for p in b.pods())


def test_a_pdb_does_not_stop_an_outage_but_bounds_a_drain(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    """A lost zone asks no PodDisruptionBudget: a pod whose eviction a PDB refuses is deleted
    (and said so); the drain, a voluntary disruption, stays blocked, bounded in time."""
    controllers.start()
    msg = "Cannot evict pod as it would violate the pod's disruption budget."
    server.api.eviction_policy = lambda ns, name: (429, msg)
    b = make_backend(outage_wait_s=5.0)
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    in_zone = [p.name for p in b.pods() if p.zone == "zone-a"]
    rec = b.zone_outage("zone-a")
    assert rec.landed, rec.detail
    assert "a PodDisruptionBudget protects deleted instead" in rec.detail
    assert all(name in rec.detail for name in in_zone)
    b.restore_zone("zone-a")
    b.wait_ready(timeout_s=20)
    started = time.monotonic()
    # 1.5 s: room for a retry (every 0.05 s) even when one eviction round trip to the mock is
    # slow on a busy CI machine (0.3 s once left no second attempt)
    drained = b.drain_zone("zone-b", timeout_s=1.5)
    assert time.monotonic() - started < 5  # bounded by its timeout
    assert not drained.landed and drained.eviction_429s >= 2 and msg in drained.detail


def test_taint_mode_lists_every_pod_it_evicts_first(
    make_backend: MakeBackend,
    server: MockServer,
    controllers: FakeControllers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controllers.start()
    _add_tenants(server)
    b = make_backend(zone_outage_mode="taint")
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    plan = b.zone_outage_plan("zone-a")
    fate = {f"{p.namespace}/{p.name}": p.action for p in plan.pods}
    assert fate["kube-system/coredns-abc"] == "evicted by taint"
    assert fate["kube-system/metrics-server-xyz"] == "evicted by taint"
    assert fate["kube-system/kindnet-123"] == "tolerates taint"
    caplog.set_level(logging.WARNING, logger="harness.backends.kube")
    rec = b.zone_outage("zone-a")
    first_taint = next(
        (i for i, r in enumerate(caplog.records) if "NoExecute taint" in r.getMessage()), None
    )
    assert first_taint is not None
    assert "kube-system/coredns-abc" in caplog.records[first_taint].getMessage()
    assert "kube-system/coredns-abc" in rec.detail and "2 pod(s) of other namespaces" in rec.detail


def test_dry_run_lists_every_pod_and_changes_nothing(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    _add_tenants(server)
    b = make_backend(zone_outage_dry_run=True, zone_outage_mode="taint")
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    ours = [p.name for p in b.pods() if p.zone == "zone-a"]
    controllers.stop()  # hold every other writer still: any change now is the fault's
    before = _node(server)
    pods_before = sorted(p["metadata"]["name"] for p in server.api.items("Pod"))
    rec = b.zone_outage("zone-a")
    assert not rec.landed and rec.detail.startswith("dry run")
    for name in ["kube-system/coredns-abc", "kube-system/kindnet-123", *ours]:
        assert name.split("/")[-1] in rec.detail
    assert _node(server) == before  # same resourceVersion: not even a no-op write
    assert sorted(p["metadata"]["name"] for p in server.api.items("Pod")) == pods_before
    assert server.api.evictions == []


def test_gameday_dry_run_lists_every_pod_a_zone_fault_would_touch(
    server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gauntlet gameday zone-outage --backend kube --dry-run`: the cluster's pods on each zone
    the fault may hit, read from the API server; nothing created, no node changed."""
    import yaml
    from click.testing import CliRunner

    from harness.cli.gameday import gameday

    _add_tenants(server)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "mock", "cluster": {"server": server.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": CTX, "context": {"cluster": "mock", "user": "u"}}],
                "current-context": CTX,
            }
        )
    )
    profile = yaml.safe_load((ROOT / "scenarios" / "profiles" / "local.yaml").read_text())
    profile["kube"] = {"allowed_contexts": [CTX], "chaos_allowed": True}
    profile_file = tmp_path / "profile.yaml"
    profile_file.write_text(yaml.safe_dump(profile))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # the client reads $KUBECONFIG once, at import
    monkeypatch.setattr(
        "kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
    )
    before = {n["metadata"]["name"]: n for n in server.api.items("Node")}
    args = ["zone-outage", "--backend", "kube", "--context", CTX, "--profile", str(profile_file)]
    result = CliRunner().invoke(gameday, [*args, "--dry-run", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.output
    for zone in ("zone-a", "zone-b", "zone-c"):  # the zone is chosen at run time: all of them
        assert f"zone {zone}: cordon + evict" in out
    assert "untouched  kube-system/coredns-abc on node-zone-a-0" in out
    assert "nothing deployed, nothing touched" in out
    assert server.api.namespaces == {} and server.api.evictions == []
    assert {n["metadata"]["name"]: n for n in server.api.items("Node")} == before
