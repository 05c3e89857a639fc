"""One kind cluster per run, shared by every backend the run builds (`KindCluster`).

Each scenario (and each deploy inside one) builds a fresh KindBackend in a fresh workdir; the
cluster must not follow that lifetime. `shared_cluster(name, ...)` returns the run's cluster for
that name, creating it on first use; `close_clusters()` (the run's end, and atexit as a
fallback) deletes every cluster this process created, unless it was asked to keep it. A cluster
of that name that this process did not create (kept by an earlier run) is reused and never
deleted, as pytest-kubernetes' manager leaves clusters it did not create alone.

Setup, once per cluster: the reference image built (`harness.backends.kind_image`), `kind create
cluster` from `manifests/kind/cluster.yaml`, every node `Ready=True` (polled through the API),
the image loaded, metrics-server installed and its APIService `Available=True`
(`harness.backends.kind_metrics`), optional fake GPU capacity.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from harness.backends.base import BackendError
from harness.backends.kube.api import KubeApi, api_client_for, resource_path
from harness.errors import SetupError
from harness.resources import kind_cluster_config

log = logging.getLogger("harness.backends.kind")


class ClusterManager(Protocol):
    """What KindCluster asks of kind (`KindCli` for the real binary; tests pass a fake)."""

    def exists(self) -> bool: ...
    def create(self, config: Path, kubeconfig: Path, kubernetes_version: str) -> None: ...
    def export_kubeconfig(self, kubeconfig: Path) -> None: ...
    def load_image(self, image: str) -> None: ...
    def delete(self) -> None: ...


class KindCli:
    """The kind binary: create through pytest-kubernetes' KindManager, the rest direct."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._manager: Any = None

    def _kind(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            ["kind", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if res.returncode != 0:
            raise BackendError(f"kind {' '.join(args)} failed: {res.stderr.strip()[-600:]}")
        return res

    def exists(self) -> bool:
        return self.name in self._kind("get", "clusters").stdout.split()

    def create(self, config: Path, kubeconfig: Path, kubernetes_version: str) -> None:
        from pytest_kubernetes.options import ClusterOptions
        from pytest_kubernetes.providers import select_provider_manager

        self._manager = select_provider_manager("kind")(self.name, str(config), kubeconfig)
        try:
            self._manager.create(
                ClusterOptions(
                    api_version=kubernetes_version,
                    provider_config=config,
                    kubeconfig_path=kubeconfig,
                    cluster_timeout=600,
                ),
                timeout=120,
            )
        except subprocess.CalledProcessError as err:  # pytest-kubernetes runs kind with check
            stderr = err.stderr.decode(errors="replace") if err.stderr else ""
            raise BackendError(f"kind create cluster {self.name} failed: {stderr[-600:]}") from None

    def export_kubeconfig(self, kubeconfig: Path) -> None:
        self._kind("export", "kubeconfig", "--name", self.name, "--kubeconfig", str(kubeconfig))

    def load_image(self, image: str) -> None:
        self._kind("load", "docker-image", image, "--name", self.name, timeout=900)

    def delete(self) -> None:
        self._kind("delete", "cluster", "--name", self.name)


ApiFactory = Callable[[str, Path], KubeApi]


def _api_for(context: str, kubeconfig: Path) -> KubeApi:
    return KubeApi(api_client_for(context, str(kubeconfig)))


def _node_ready(node: dict[str, Any]) -> tuple[bool, str]:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            ok = c.get("status") == "True"
            return ok, f"Ready={c.get('status')} ({c.get('reason') or '-'})"
    return False, "no Ready condition yet"


def wait_nodes_ready(
    api: KubeApi, expected: int, timeout_s: float = 300.0, poll_s: float = 2.0
) -> list[str]:
    """Every one of `expected` nodes has condition Ready=True, or SetupError naming the rest."""
    deadline = time.monotonic() + timeout_s
    seen = "no answer yet"
    while True:
        try:
            nodes = api.list(resource_path("v1", "Node"))
            states = {n["metadata"]["name"]: _node_ready(n) for n in nodes}
            if len(states) >= expected and all(ok for ok, _ in states.values()):
                return sorted(states)
            seen = (
                f"{len(states)}/{expected} nodes registered; "
                + ", ".join(f"{n}: {why}" for n, (ok, why) in sorted(states.items()) if not ok)
            ).rstrip("; ")
        except Exception as err:  # the API server may still be starting
            seen = f"{type(err).__name__}: {err}"
        if time.monotonic() >= deadline:
            raise SetupError(f"kind nodes not Ready within {timeout_s:.0f} s: {seen}")
        time.sleep(poll_s)


@dataclass
class KindCluster:
    """A run's kind cluster: `ensure()` sets it up once, `close()` deletes it unless kept."""

    name: str
    kubernetes_version: str
    keep: bool = False
    manager: ClusterManager | None = None
    api_factory: ApiFactory = _api_for
    workdir: Path | None = None  # kubeconfig and config; default: a temp dir
    node_ready_timeout_s: float = 300.0
    poll_s: float = 2.0
    # before the cluster exists (the image build: a failure there leaves no cluster behind)
    prepare_steps: list[Callable[[KindCluster], None]] = field(default_factory=list)
    # once its nodes are Ready (image load, metrics-server, fake GPUs)
    setup_steps: list[Callable[[KindCluster], None]] = field(default_factory=list)
    created: bool = False  # by this process (only those are deleted)
    ready: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        if self.manager is None:
            self.manager = KindCli(self.name)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"gauntlet-kind-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "kubeconfig"

    def api(self) -> KubeApi:
        return self.api_factory(self.context, self.kubeconfig)

    def _config(self) -> tuple[Path, int]:
        assert self.workdir is not None
        config = yaml.safe_load(kind_cluster_config().read_text())
        config["name"] = self.name
        for node in config["nodes"]:
            node["image"] = f"kindest/node:v{self.kubernetes_version}"
        path = self.workdir / "kind-cluster.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path, len(config["nodes"])

    def ensure(self) -> KindCluster:
        """Create (or adopt) the cluster, wait for its nodes, run the setup steps: once."""
        with self._lock:
            if self.ready:
                return self
            if self.closed:
                raise SetupError(f"kind cluster {self.name} was already closed by this run")
            assert self.manager is not None
            config, nodes = self._config()
            for step in self.prepare_steps:
                step(self)
            if self.manager.exists():
                log.info("reusing existing kind cluster %s (not created by this run)", self.name)
                self.manager.export_kubeconfig(self.kubeconfig)
            else:
                log.info(
                    "creating kind cluster %s (Kubernetes %s, zones a/b/c)",
                    self.name,
                    self.kubernetes_version,
                )
                self.manager.create(config, self.kubeconfig, self.kubernetes_version)
                self.created = True
            try:
                names = wait_nodes_ready(
                    self.api(), nodes, timeout_s=self.node_ready_timeout_s, poll_s=self.poll_s
                )
                log.info("kind cluster %s: nodes Ready: %s", self.name, ", ".join(names))
                for step in self.setup_steps:
                    step(self)
            except BaseException:
                self.close()
                raise
            self.ready = True
            return self

    def close(self) -> None:
        """Delete the cluster if this process created it and it is not kept; idempotent."""
        if self.closed:
            return
        self.closed = True
        if not self.created:
            return
        if self.keep:
            log.info(
                "keeping kind cluster %s (kubeconfig %s; delete: kind delete cluster --name %s)",
                self.name,
                self.kubeconfig,
                self.name,
            )
            return
        log.info("deleting kind cluster %s", self.name)
        assert self.manager is not None
        self.manager.delete()
        if self.workdir is not None and self.workdir.name.startswith("gauntlet-kind-"):
            shutil.rmtree(self.workdir, ignore_errors=True)


# the run's clusters ---------------------------------------------------------------------------
_CLUSTERS: dict[str, KindCluster] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_cluster(name: str, **config: Any) -> KindCluster:
    """The run's cluster `name`: the one already made by this run, or a new (unset-up) one.

    A second call with a different Kubernetes version or keep flag is refused: one name, one
    cluster per run."""
    with _REGISTRY_LOCK:
        cluster = _CLUSTERS.get(name)
        if cluster is not None and not cluster.closed:
            for key in ("kubernetes_version", "keep"):
                if key in config and config[key] != getattr(cluster, key):
                    raise SetupError(
                        f"kind cluster {name} is this run's with {key}="
                        f"{getattr(cluster, key)!r}, asked again with {config[key]!r}: "
                        "use another cluster_name"
                    )
            return cluster
        cluster = KindCluster(name=name, **config)
        _CLUSTERS[name] = cluster
        return cluster


def close_clusters() -> None:
    """The run's end: close every cluster of this run (deleting those not kept)."""
    with _REGISTRY_LOCK:
        clusters = list(_CLUSTERS.values())
        _CLUSTERS.clear()
    errors: list[str] = []
    for cluster in clusters:
        try:
            cluster.close()
        except Exception as err:
            errors.append(f"{cluster.name}: {err}")
    if errors:
        raise BackendError("could not delete kind cluster(s): " + "; ".join(errors))


def _close_at_exit() -> None:
    try:
        close_clusters()
    except Exception as err:  # at exit, a message is all that is left to give
        log.error("%s", err)


atexit.register(_close_at_exit)
