"""KindBackend: a throwaway multi-zone kind cluster (the packaged `manifests/kind/cluster.yaml`),
then the kube backend.

Creates the cluster through pytest-kubernetes' KindManager with a pinned node image
(Kubernetes version), builds and loads the reference image, installs metrics-server with
`--kubelet-insecure-tls` (kind's kubelet serving certs are self-signed), can advertise fake
`nvidia.com/gpu` capacity for scheduling tests, and deletes the cluster unless asked to keep it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from harness.backends.base import BackendError, ClusterProvisioner
from harness.backends.kube import KubeBackend
from harness.backends.kube.api import KubeApi, api_client_for, resource_path
from harness.backends.kube.portforward import find_kubectl
from harness.backends.kube.safety import check_chaos
from harness.backends.observe import FaultKind, FaultRecord
from harness.errors import InputError, SetupError
from harness.profile import Profile
from harness.resources import kind_cluster_config, source_checkout

log = logging.getLogger("harness.backends.kind")
DEFAULT_K8S_VERSION = "1.33.1"
DEFAULT_IMAGE = "gauntlet-inference:dev"


def options(
    profile: Profile, *, context: str | None, allow_contexts: list[str], runtime: str
) -> dict[str, Any]:
    """KindBackend(workdir, **options) for a run (see `harness.backends.backend_options`).

    The cluster is kept between the run's scenarios (each one's backend reuses it instead of
    recreating it); chaos follows the profile. kind makes its own context, so `context` is
    refused and `allow_contexts` ignored; `runtime` is ignored (pods run in the node's containerd).
    """
    del allow_contexts, runtime
    if context:
        raise InputError(
            "the kind backend makes its own context (kind-gauntlet)",
            field="--context",
            fix="drop --context, or use --backend kube --context NAME",
        )
    return {"chaos_allowed": profile.kube.chaos_allowed, "keep_cluster": True}


def check_prerequisites() -> str:
    """Fail in seconds with ONE message naming everything missing and how to get it."""
    missing: list[str] = []
    docker = shutil.which("docker")
    if docker is None:
        missing.append("docker CLI not found (Debian: `apt-get install docker.io`)")
    else:
        try:
            res = subprocess.run(
                [docker, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if res.returncode != 0:
                missing.append(
                    "docker daemon not reachable (start it: `dockerd &` or "
                    "`systemctl start docker`; "
                    f"docker said: {res.stderr.strip()[:120]})"
                )
        except subprocess.TimeoutExpired:
            missing.append("docker daemon did not answer within 10 s (is dockerd running?)")
    if shutil.which("kind") is None:
        missing.append(
            "kind not found (get it: `go install sigs.k8s.io/kind@v0.29.0` or the release binary "
            "from https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
        )
    try:
        kubectl = find_kubectl()
    except SetupError as exc:
        missing.append(str(exc))
        kubectl = ""
    if missing:
        raise SetupError("the kind backend cannot start: " + "; ".join(missing))
    return kubectl


class KindBackend(KubeBackend, ClusterProvisioner):
    name = "kind"

    @classmethod
    def check_prerequisites(cls) -> None:
        check_prerequisites()

    def __init__(
        self,
        workdir: Path,
        *,
        cluster_name: str = "gauntlet",
        kubernetes_version: str = DEFAULT_K8S_VERSION,
        keep_cluster: bool = False,
        image: str = DEFAULT_IMAGE,
        build_image: bool = True,
        dockerfile: Path | None = None,
        metrics_server_manifest: Path | None = None,
        fake_gpus_per_node: int = 0,
        chaos_allowed: bool = True,
        **kube_options: Any,
    ) -> None:
        kubectl = check_prerequisites()
        from pytest_kubernetes.options import ClusterOptions
        from pytest_kubernetes.providers import select_provider_manager

        workdir.mkdir(parents=True, exist_ok=True)
        self.keep_cluster = keep_cluster
        self.cluster_name = cluster_name
        cluster_config = kind_cluster_config()
        config = yaml.safe_load(cluster_config.read_text())
        config["name"] = cluster_name
        for node in config["nodes"]:
            node["image"] = f"kindest/node:v{kubernetes_version}"
        config_path = workdir / "kind-cluster.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        kubeconfig = workdir / "kubeconfig"
        log.info(
            "creating kind cluster %s (Kubernetes %s, zones a/b/c) from %s",
            cluster_name,
            kubernetes_version,
            cluster_config,
        )
        manager_cls = select_provider_manager("kind")
        self.manager = manager_cls(cluster_name, str(config_path), kubeconfig)
        self.manager.create(
            ClusterOptions(
                api_version=kubernetes_version,
                provider_config=config_path,
                kubeconfig_path=kubeconfig,
                cluster_timeout=600,
            ),
            timeout=120,
        )
        context = f"kind-{cluster_name}"
        try:
            if build_image:
                self._build_image(image, dockerfile)
            log.info("loading image %s into kind cluster %s", image, cluster_name)
            self.manager.load_image(image)
            self._kubectl_path = kubectl
            self._install_metrics_server(kubectl, kubeconfig, context, metrics_server_manifest)
            if fake_gpus_per_node:
                self._advertise_gpus(api_client_for(context, str(kubeconfig)), fake_gpus_per_node)
            super().__init__(
                workdir,
                context=context,
                allowed_contexts=[context],
                chaos_allowed=chaos_allowed,
                kubeconfig=str(kubeconfig),
                kubectl=kubectl,
                **kube_options,
            )
        except BaseException:
            if not keep_cluster:
                self.manager.delete()
            raise

    # setup steps -----------------------------------------------------------------------------
    @staticmethod
    def _build_image(image: str, dockerfile: Path | None) -> None:
        """docker build of the reference image, with the source checkout as its build context."""
        root = source_checkout()
        if root is None:
            raise SetupError(
                f"building {image} needs gauntlet's source checkout "
                "(reference_service/Dockerfile); "
                f"pass build_image=False with an image already in the local docker engine"
            )
        dockerfile = dockerfile or root / "reference_service" / "Dockerfile"
        if not dockerfile.exists():
            raise SetupError(
                f"{dockerfile} not found: cannot build {image} (pass build_image=False "
                f"with an image already in the local docker engine)"
            )
        log.info("docker build -t %s -f %s %s", image, dockerfile, root)
        res = subprocess.run(
            ["docker", "build", "-t", image, "-f", str(dockerfile), str(root)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if res.returncode != 0:
            raise BackendError(f"docker build of {image} failed: {res.stderr.strip()[-800:]}")

    @staticmethod
    def _install_metrics_server(
        kubectl: str, kubeconfig: Path, context: str, manifest: Path | None
    ) -> None:
        if manifest is None:
            log.warning(
                "no metrics-server manifest given (there is no internet to fetch components.yaml): "
                "no resource samples, and CPU-based HPAs cannot scale"
            )
            return
        base = [kubectl, "--kubeconfig", str(kubeconfig), "--context", context]
        res = subprocess.run(
            [*base, "apply", "-f", str(manifest)], capture_output=True, text=True, timeout=120
        )
        if res.returncode != 0:
            raise BackendError(
                f"installing metrics-server from {manifest} failed: {res.stderr.strip()}"
            )
        dep = json.loads(
            subprocess.run(
                [*base, "-n", "kube-system", "get", "deploy", "metrics-server", "-o", "json"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
        args = dep["spec"]["template"]["spec"]["containers"][0].get("args", [])
        if "--kubelet-insecure-tls" not in args:
            patch = [
                {
                    "op": "add",
                    "path": "/spec/template/spec/containers/0/args/-",
                    "value": "--kubelet-insecure-tls",
                }
            ]
            subprocess.run(
                [
                    *base,
                    "-n",
                    "kube-system",
                    "patch",
                    "deploy",
                    "metrics-server",
                    "--type=json",
                    "-p",
                    json.dumps(patch),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )

    @staticmethod
    def _advertise_gpus(api_client: Any, per_node: int) -> None:
        api = KubeApi(api_client)
        for node in api.list(resource_path("v1", "Node")):
            labels = node["metadata"].get("labels") or {}
            if "topology.kubernetes.io/zone" not in labels:
                continue  # workers only
            name = node["metadata"]["name"]
            log.info("advertising %d fake nvidia.com/gpu on %s (scheduling only)", per_node, name)
            api.merge_patch(
                resource_path("v1", "Node", name=name, subresource="status"),
                {"status": {"capacity": {"nvidia.com/gpu": str(per_node)}}},
            )

    # kind can freeze a container from its node (outside the pod's PID namespace) -----------------
    def hang_pod(self, pod: str) -> FaultRecord:
        check_chaos("hang_pod", self.context, self.chaos_allowed)
        started = time.time()
        obj = self.api.get(resource_path("v1", "Pod", self.namespace, pod))
        node = (obj.get("spec") or {}).get("nodeName")
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        cid = (statuses[0].get("containerID") or "").split("://")[-1] if statuses else ""
        if not node or not cid:
            return FaultRecord(
                kind=FaultKind.HANG,
                target=pod,
                started_at=started,
                ended_at=time.time(),
                landed=False,
                detail="pod has no running container to freeze",
            )
        log.warning(
            "hanging pod %s/%s: SIGSTOP of container %s from node %s",
            self.namespace,
            pod,
            cid[:12],
            node,
        )
        script = (
            "kill -STOP $(crictl inspect --output go-template --template '{{.info.pid}}' "
            f"{cid})"
        )
        res = subprocess.run(
            ["docker", "exec", node, "sh", "-c", script], capture_output=True, text=True, timeout=60
        )
        landed = res.returncode == 0 and self._unresponsive(pod)
        return FaultRecord(
            kind=FaultKind.HANG,
            target=pod,
            started_at=started,
            ended_at=time.time(),
            affected=[pod] if landed else [],
            landed=landed,
            detail="container main process stopped from the node"
            if landed
            else f"freeze did not land: {res.stderr.strip()[:200] or 'pod still answers'}",
        )

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            if getattr(self, "keep_cluster", True):
                log.info(
                    "keeping kind cluster %s (delete: kind delete cluster --name %s)",
                    self.cluster_name,
                    self.cluster_name,
                )
            elif getattr(self, "manager", None) is not None:
                log.info("deleting kind cluster %s", self.cluster_name)
                self.manager.delete()
                self.manager = None
