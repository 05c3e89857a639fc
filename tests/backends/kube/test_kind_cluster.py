"""issue 18 items 3 and 4: one kind cluster per run, and metrics-server Available before use.

No kind binary: a fake ClusterManager writes the kubeconfig `kind create cluster` would write,
pointing at the mock API server (so every client, the cluster's node wait and the backends, goes
through real HTTP), and records what was asked of kind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_mock import MockServer
from kube_objects import api_client

import harness.backends.kind as kind_mod
from harness.backends import close_run, kind_cluster, kind_metrics
from harness.backends.kind_cluster import KindCluster, wait_nodes_ready
from harness.backends.kube.api import KubeApi
from harness.errors import SetupError
from harness.manifests.render import load_file
from harness.manifests.validate import validate_bundle
from harness.run.options import make_backend_factory


class FakeKind:
    """kind as the run sees it: `exists`, `create` (writes a kubeconfig for the mock, registers
    the control plane NotReady, Ready after `ready_after_s`), `load_image`, `delete`."""

    def __init__(
        self, server: MockServer, *, exists: bool = False, ready_after_s: float = 0.3
    ) -> None:
        self.server = server
        self._exists = exists
        self.ready_after_s = ready_after_s
        self.calls: list[str] = []

    def _kubeconfig(self, path: Path, name: str = "gauntlet") -> None:
        ctx = f"kind-{name}"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": ctx, "cluster": {"server": self.server.url}}],
                    "users": [{"name": ctx, "user": {"token": "t"}}],
                    "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}],
                    "current-context": ctx,
                }
            )
        )

    def _control_plane(self, ready: str) -> None:
        self.server.call(
            self.server.api.put,
            "Node",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "gauntlet-control-plane"},
                "spec": {},
                "status": {
                    "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletNotReady"}]
                },
            },
        )

    def exists(self) -> bool:
        self.calls.append("exists")
        return self._exists

    def create(self, config: Path, kubeconfig: Path, kubernetes_version: str) -> None:
        self.calls.append("create")
        assert yaml.safe_load(config.read_text())["name"] == "gauntlet"
        self._kubeconfig(kubeconfig)
        self._exists = True
        self._control_plane("False")
        threading.Timer(self.ready_after_s, self._control_plane, ("True",)).start()

    def export_kubeconfig(self, kubeconfig: Path) -> None:
        self.calls.append("export")
        self._kubeconfig(kubeconfig)
        self._control_plane("True")

    def load_image(self, image: str) -> None:
        self.calls.append(f"load {image}")

    def delete(self) -> None:
        self.calls.append("delete")
        self._exists = False


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    kind_cluster._CLUSTERS.clear()
    yield
    kind_cluster._CLUSTERS.clear()


@pytest.fixture()
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image is already in the engine (build_image=False) and kubectl is not run."""
    monkeypatch.setattr(kind_mod, "image_exists", lambda image: True)


def _options(fake: FakeKind, **kw: Any) -> dict[str, Any]:
    return {
        "cluster_manager": fake,
        "build_image": False,
        "metrics_server": False,
        "metrics_pipeline": False,
        "chaos_allowed": True,
        "poll_s": 0.05,
        "metrics_poll_s": 0.05,
        **kw,
    }


def _scenario_backends(tmp_path: Path, fake: FakeKind, n: int = 2, **kw: Any) -> list[Any]:
    """What a run does: each scenario builds its backend from the run's factory in its own dir."""
    factory = make_backend_factory("kind", _options(fake, **kw))
    made = []
    for i in range(n):
        b = factory(tmp_path / f"scenario-{i}" / "backend")
        made.append(b)
        b.teardown()  # the scenario ends; the cluster must outlive it
    return made


def test_two_scenarios_of_a_run_share_one_cluster_created_once_deleted_once(
    server: MockServer, tmp_path: Path, no_build: None
) -> None:
    fake = FakeKind(server)
    backends = _scenario_backends(tmp_path, fake)
    assert fake.calls.count("create") == 1, fake.calls
    assert "delete" not in fake.calls  # a scenario's teardown leaves the run's cluster
    assert backends[0].cluster is backends[1].cluster
    assert backends[0].kubeconfig == backends[1].kubeconfig
    assert fake.calls.count("load gauntlet-inference:dev") == 1
    close_run()  # the run's end
    assert fake.calls.count("delete") == 1, fake.calls
    close_run()
    assert fake.calls.count("delete") == 1  # idempotent


def test_keep_cluster_is_not_deleted_at_the_end(
    server: MockServer, tmp_path: Path, no_build: None
) -> None:
    fake = FakeKind(server)
    _scenario_backends(tmp_path, fake, keep_cluster=True)
    close_run()
    assert fake.calls.count("create") == 1
    assert "delete" not in fake.calls


def test_keep_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.profile import load_profile

    prof = load_profile("local")
    opts = kind_mod.options(prof, context=None, allow_contexts=[], runtime="process")
    assert opts["keep_cluster"] is False  # deleted by default, as the docs promise
    monkeypatch.setenv(kind_mod.KEEP_ENV, "1")
    assert kind_mod.options(prof, context=None, allow_contexts=[], runtime="process")[
        "keep_cluster"
    ]


def test_a_cluster_that_exists_but_not_from_this_run_is_reused_never_deleted(
    server: MockServer, tmp_path: Path, no_build: None
) -> None:
    fake = FakeKind(server, exists=True)
    _scenario_backends(tmp_path, fake)
    close_run()
    assert "create" not in fake.calls and "delete" not in fake.calls
    assert fake.calls.count("export") == 1  # adopted once, its kubeconfig exported


def test_nodes_are_waited_for_until_ready(server: MockServer, tmp_path: Path) -> None:
    fake = FakeKind(server, ready_after_s=0.5)
    cluster = KindCluster(name="gauntlet", kubernetes_version="1.33.1", manager=fake, poll_s=0.05)
    t0 = time.monotonic()
    cluster.ensure()
    assert time.monotonic() - t0 >= 0.4  # the control plane was NotReady for 0.5 s
    assert cluster.ready and cluster.created
    cluster.close()
    assert fake.calls[-1] == "delete"


def test_nodes_never_ready_fail_naming_them(server: MockServer) -> None:
    server.call(
        server.api.put,
        "Node",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "stuck"},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NoCNI"}]},
        },
    )
    api = KubeApi(api_client(server))
    with pytest.raises(SetupError) as err:
        wait_nodes_ready(api, expected=4, timeout_s=0.3, poll_s=0.05)
    assert "stuck: Ready=False (NoCNI)" in str(err.value)
    with pytest.raises(SetupError, match="4/6 nodes registered"):
        wait_nodes_ready(api, expected=6, timeout_s=0.2, poll_s=0.05)


def test_a_failed_setup_deletes_the_cluster_it_created(server: MockServer) -> None:
    fake = FakeKind(server, ready_after_s=0.0)

    def broken(_: KindCluster) -> None:
        raise SetupError("image load failed")

    cluster = KindCluster(
        name="gauntlet",
        kubernetes_version="1.33.1",
        manager=fake,
        poll_s=0.05,
        setup_steps=[broken],
    )
    with pytest.raises(SetupError):
        cluster.ensure()
    assert fake.calls[-1] == "delete"


def test_an_image_build_failure_creates_no_cluster(server: MockServer) -> None:
    fake = FakeKind(server)

    def build_fails(_: KindCluster) -> None:
        raise SetupError("docker build failed")

    cluster = KindCluster(
        name="gauntlet", kubernetes_version="1.33.1", manager=fake, prepare_steps=[build_fails]
    )
    with pytest.raises(SetupError, match="docker build failed"):
        cluster.ensure()
    assert "create" not in fake.calls and "delete" not in fake.calls


# item 4: metrics-server -------------------------------------------------------------------
def _apiservice(status: str, reason: str = "", group: str = "metrics.k8s.io") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": "Available", "status": status}
    if reason:
        cond.update(reason=reason, message="endpoints for service/metrics-server not found")
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"v1beta1.{group}"},
        "spec": {"group": group, "version": "v1beta1"},
        "status": {"conditions": [cond]},
    }


def test_pinned_metrics_server_manifest() -> None:
    path = kind_metrics.default_manifest()
    assert path.name == f"metrics-server-{kind_metrics.METRICS_SERVER_VERSION}.yaml"
    header = path.read_text().splitlines()[0]
    assert kind_metrics.METRICS_SERVER_VERSION in header
    bundle = load_file(path)  # the project's parser
    validate_bundle(bundle)  # kubernetes-validate, strict
    kinds = sorted(o["kind"] for o in bundle)
    assert kinds.count("APIService") == 1 and "Deployment" in kinds
    (svc,) = bundle.of_kind("APIService")
    assert svc["metadata"]["name"] == kind_metrics.METRICS_APISERVICE
    (dep,) = bundle.of_kind("Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"].count("--kubelet-insecure-tls") == 1
    assert c["image"] == (
        f"registry.k8s.io/metrics-server/metrics-server:{kind_metrics.METRICS_SERVER_VERSION}"
    )
    assert c["imagePullPolicy"] == "IfNotPresent"
    objects, images = kind_metrics.prepare_manifest(path)
    assert images == [c["image"]]
    args = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert args.count("--kubelet-insecure-tls") == 1  # not added twice


def test_an_override_manifest_gets_the_insecure_tls_flag(tmp_path: Path) -> None:
    lines = kind_metrics.default_manifest().read_text().splitlines(keepends=True)
    upstream = "".join(
        ln for ln in lines if not ln.startswith("#") and "--kubelet-insecure-tls" not in ln
    )
    assert "--kubelet-insecure-tls" not in upstream
    path = tmp_path / "components.yaml"
    path.write_text(upstream)
    objects, _ = kind_metrics.prepare_manifest(path)
    dep = next(o for o in objects if o["kind"] == "Deployment")
    assert "--kubelet-insecure-tls" in dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_wait_until_the_apiservice_turns_available(server: MockServer) -> None:
    server.call(server.api.put, "APIService", _apiservice("False", "MissingEndpoints"))
    threading.Timer(0.5, server.call, (server.api.put, "APIService", _apiservice("True"))).start()
    api = KubeApi(api_client(server))
    waited = kind_metrics.wait_apiservice_available(api, timeout_s=10, poll_s=0.05)
    assert 0.4 <= waited < 5


def test_wait_names_what_it_saw_when_it_never_turns_available(server: MockServer) -> None:
    api = KubeApi(api_client(server))
    with pytest.raises(SetupError, match=r"v1beta1\.metrics\.k8s\.io not found"):
        kind_metrics.wait_apiservice_available(api, timeout_s=0.2, poll_s=0.05)
    server.call(server.api.put, "APIService", _apiservice("False", "MissingEndpoints"))
    with pytest.raises(SetupError) as err:
        kind_metrics.wait_apiservice_available(api, timeout_s=0.2, poll_s=0.05)
    assert "Available=False reason=MissingEndpoints" in str(err.value)


def test_metrics_server_is_installed_by_default_and_waited_for(
    server: MockServer, tmp_path: Path, no_build: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[list[dict[str, Any]]] = []

    def apply(kubectl: str, kubeconfig: Path, context: str, objects: list[dict[str, Any]]) -> None:
        applied.append(objects)
        # the aggregator registers the APIService unavailable; metrics-server comes up later
        server.call(server.api.put, "APIService", _apiservice("False", "MissingEndpoints"))
        threading.Timer(
            0.4, server.call, (server.api.put, "APIService", _apiservice("True"))
        ).start()

    monkeypatch.setattr(kind_metrics, "apply_manifest", apply)
    monkeypatch.setattr(kind_metrics, "local_image", lambda image: True)
    monkeypatch.setattr(kind_mod, "_kubectl_or_none", lambda: "kubectl")
    fake = FakeKind(server)
    factory = make_backend_factory("kind", {**_options(fake), "metrics_server": True})
    t0 = time.monotonic()
    backend = factory(tmp_path / "s0" / "backend")
    assert time.monotonic() - t0 >= 0.3  # handed over only once Available
    backend.teardown()
    assert len(applied) == 1
    dep = next(o for o in applied[0] if o["kind"] == "Deployment")
    assert "--kubelet-insecure-tls" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert server.api.apiservice_available("v1beta1.metrics.k8s.io") is True
    assert (
        f"load registry.k8s.io/metrics-server/metrics-server:{kind_metrics.METRICS_SERVER_VERSION}"
        in fake.calls
    )
    close_run()


def test_certify_deletes_the_runs_cluster_after_its_scenarios(
    server: MockServer, tmp_path: Path, no_build: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's run end calls close_run: two scenarios of one `certify --backend kind` run
    deploy on one cluster, deleted once, after the last scenario."""
    from rich.console import Console

    from harness.run import engine
    from harness.run.options import CertifyOptions
    from harness.run.options import prepare as real_prepare
    from harness.scenarios.base import ScenarioContext
    from harness.verdict import Check, Verdict

    fake = FakeKind(server)
    seen: list[tuple[str, list[str]]] = []

    def prepare(opts: CertifyOptions) -> Any:
        prep = real_prepare(opts, check_backend=False)  # no kind binary for the preflight
        prep.backend_factory = make_backend_factory("kind", _options(fake))
        return prep

    def scenario(name: str, ctx: ScenarioContext) -> Verdict:
        backend = ctx.backend_factory(ctx.out_dir / "backend")  # as ctx.deploy() does
        backend.teardown()
        seen.append((name, list(fake.calls)))
        return Verdict.from_checks(name, "local", [Check.skip("x", None, "fake scenario")])

    monkeypatch.setattr(engine, "prepare", prepare)
    monkeypatch.setattr(engine, "run_scenario", scenario)
    opts = CertifyOptions(
        backend="kind", only=["cold-start", "capacity"], out=tmp_path / "run", html=False
    )
    engine.certify(opts, console=Console(file=open(tmp_path / "log", "w")))  # noqa: SIM115
    assert [n for n, _ in seen] == ["cold-start", "capacity"]
    assert all("delete" not in calls for _, calls in seen)  # not between scenarios
    assert fake.calls.count("create") == 1 and fake.calls.count("delete") == 1, fake.calls


def test_the_hpa_metrics_pipeline_is_installed_and_waited_for(
    server: MockServer, tmp_path: Path, no_build: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus + prometheus-adapter go in after metrics-server; the backend is handed over
    only once the custom metrics API is Available (else the HPA's Pods metric fails every sync)."""
    applied: list[list[dict[str, Any]]] = []

    def apply(kubectl: str, kubeconfig: Path, context: str, objects: list[dict[str, Any]]) -> None:
        applied.append(objects)
        for group in ("metrics.k8s.io", "custom.metrics.k8s.io"):
            server.call(
                server.api.put, "APIService", _apiservice("False", "MissingEndpoints", group)
            )
        timer = threading.Timer(
            0.4,
            server.call,
            (server.api.put, "APIService", _apiservice("True", group="custom.metrics.k8s.io")),
        )
        timer.start()

    monkeypatch.setattr(kind_metrics, "apply_manifest", apply)
    monkeypatch.setattr(kind_metrics, "local_image", lambda image: False)
    monkeypatch.setattr(kind_mod, "_kubectl_or_none", lambda: "kubectl")
    fake = FakeKind(server)
    factory = make_backend_factory("kind", {**_options(fake), "metrics_pipeline": True})
    t0 = time.monotonic()
    backend = factory(tmp_path / "s0" / "backend")
    assert time.monotonic() - t0 >= 0.3  # handed over only once Available
    backend.teardown()
    (objects,) = applied
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("APIService", kind_metrics.PIPELINE_APISERVICE) in names
    assert any(k == "Deployment" and "adapter" in n for k, n in names)
    assert server.api.apiservice_available(kind_metrics.PIPELINE_APISERVICE) is True
    close_run()
