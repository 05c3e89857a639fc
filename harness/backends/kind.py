"""KindBackend: the run's multi-zone kind cluster (the packaged `manifests/kind/cluster.yaml`),
then the kube backend.

The cluster belongs to the run, not to a backend (`harness.backends.kind_cluster`): the first
KindBackend of a run creates it through pytest-kubernetes' KindManager with a pinned node image
(Kubernetes version), waits until every node is Ready, builds the reference image
(`harness.backends.kind_image`, the build `scripts/image_smoke.sh` uses) and loads it, installs
the pinned metrics-server (`manifests/kind/metrics-server-v0.8.1.yaml`, `--kubelet-insecure-tls`
for kind's self-signed kubelet certs) and waits until `v1beta1.metrics.k8s.io` is Available, can
advertise fake `nvidia.com/gpu` capacity for scheduling tests. Every later KindBackend of the run
reuses it; the run's end deletes it unless asked to keep it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness.backends import kind_metrics
from harness.backends.base import ClusterProvisioner
from harness.backends.kind_cluster import ClusterManager, KindCluster, shared_cluster
from harness.backends.kind_image import DEFAULT_IMAGE, build_reference_image, image_exists
from harness.backends.kube import KubeBackend
from harness.backends.kube.api import KubeApi, resource_path
from harness.backends.kube.portforward import find_kubectl
from harness.errors import InputError, SetupError
from harness.profile import Profile
from harness.resources import source_checkout

log = logging.getLogger("harness.backends.kind")
DEFAULT_K8S_VERSION = "1.33.1"
#: Set to 1 to keep the run's kind cluster after the run (`kind delete cluster --name gauntlet`).
KEEP_ENV = "GAUNTLET_KEEP_CLUSTER"

__all__ = ["DEFAULT_IMAGE", "DEFAULT_K8S_VERSION", "KEEP_ENV", "KindBackend", "options"]


def options(
    profile: Profile, *, context: str | None, allow_contexts: list[str], runtime: str
) -> dict[str, Any]:
    """KindBackend(workdir, **options) for a run (see `harness.backends.backend_options`).

    One cluster for the whole run (`harness.backends.kind_cluster`), deleted at its end unless
    `$GAUNTLET_KEEP_CLUSTER` is 1; chaos follows the profile. kind makes its own context, so
    `context` is refused and `allow_contexts` ignored; `runtime` is ignored (pods run in the
    node's containerd).
    """
    del allow_contexts, runtime
    if context:
        raise InputError(
            "the kind backend makes its own context (kind-gauntlet)",
            field="--context",
            fix="drop --context, or use --backend kube --context NAME",
        )
    keep = os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "true", "yes")
    out: dict[str, Any] = {"chaos_allowed": profile.kube.chaos_allowed, "keep_cluster": keep}
    if profile.kube.zone_outage is not None:
        out["zone_outage_mode"] = profile.kube.zone_outage
    return out


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


def _kubectl_or_none() -> str | None:
    try:
        return find_kubectl()
    except SetupError:
        return None


def _setup_steps(
    *,
    kubectl: str | None,
    image: str,
    build_image: bool,
    dockerfile: Path | None,
    metrics_server: bool,
    metrics_server_manifest: Path | None,
    metrics_pipeline: bool,
    metrics_timeout_s: float,
    fake_gpus_per_node: int,
) -> tuple[list[Any], list[Any]]:
    """What the run's cluster needs before it is created (the image build), and once its nodes
    are Ready (image load, metrics-server, fake GPUs), in order."""

    def build_reference(cluster: KindCluster) -> None:
        if build_image:
            root = source_checkout()
            if root is None:
                raise SetupError(
                    f"building {image} needs gauntlet's source checkout "
                    "(reference_service/Dockerfile); pass build_image=False with an image "
                    "already in the local docker engine"
                )
            res = build_reference_image(image, root=root, dockerfile=dockerfile)
            log.info("built %s: %s", image, res.seconds)
        elif not image_exists(image):
            raise SetupError(
                f"build_image=False but {image} is not in the local docker engine "
                "(build it: python -m harness.backends.kind_image)"
            )

    def load_reference_image(cluster: KindCluster) -> None:
        log.info("loading image %s into kind cluster %s", image, cluster.name)
        assert cluster.manager is not None
        cluster.manager.load_image(image)

    def install_metrics_server(cluster: KindCluster) -> None:
        manifest = metrics_server_manifest or kind_metrics.default_manifest()
        objects, images = kind_metrics.prepare_manifest(manifest)
        assert cluster.manager is not None
        for img in images:  # offline kind nodes can run what the local engine has
            if kind_metrics.local_image(img):
                cluster.manager.load_image(img)
            else:
                log.info("%s not in the local docker engine: kind's nodes will pull it", img)
        if kubectl is None:
            raise SetupError("kubectl not found: cannot install metrics-server")
        log.info("installing metrics-server from %s", manifest)
        kind_metrics.apply_manifest(kubectl, cluster.kubeconfig, cluster.context, objects)
        waited = kind_metrics.wait_apiservice_available(cluster.api(), timeout_s=metrics_timeout_s)
        log.info("%s Available after %.0f s", kind_metrics.METRICS_APISERVICE, waited)

    def install_metrics_pipeline(cluster: KindCluster) -> None:
        """Prometheus + prometheus-adapter: the HPA's Pods metrics (without them the HPA
        reports FailedGetPodsMetric every sync and cannot scale on them)."""
        objects, images = kind_metrics.pipeline_objects()
        assert cluster.manager is not None
        for img in images:
            if kind_metrics.local_image(img):
                cluster.manager.load_image(img)
            else:
                log.info("%s not in the local docker engine: kind's nodes will pull it", img)
        if kubectl is None:
            raise SetupError("kubectl not found: cannot install the metrics pipeline")
        log.info("installing the metrics pipeline from %s", kind_metrics.pipeline_dir())
        kind_metrics.apply_manifest(kubectl, cluster.kubeconfig, cluster.context, objects)
        waited = kind_metrics.wait_apiservice_available(
            cluster.api(), kind_metrics.PIPELINE_APISERVICE, timeout_s=metrics_timeout_s
        )
        log.info("%s Available after %.0f s", kind_metrics.PIPELINE_APISERVICE, waited)

    def advertise_gpus(cluster: KindCluster) -> None:
        KindBackend._advertise_gpus(cluster.api(), fake_gpus_per_node)

    steps: list[Any] = [load_reference_image]
    if metrics_server:
        steps.append(install_metrics_server)
    else:
        log.warning("metrics-server off: no resource samples, and CPU-based HPAs cannot scale")
    if metrics_pipeline:
        steps.append(install_metrics_pipeline)
    else:
        log.warning("metrics pipeline off: an HPA on Pods metrics reports FailedGetPodsMetric")
    if fake_gpus_per_node:
        steps.append(advertise_gpus)
    return [build_reference], steps


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
        metrics_server: bool = True,
        metrics_server_manifest: Path | None = None,
        metrics_pipeline: bool = True,
        metrics_timeout_s: float = 180.0,
        fake_gpus_per_node: int = 0,
        chaos_allowed: bool = True,
        cluster_manager: ClusterManager | None = None,
        **kube_options: Any,
    ) -> None:
        # a fake manager (tests) needs no kind binary; kubectl applies metrics-server
        kubectl = check_prerequisites() if cluster_manager is None else _kubectl_or_none()
        workdir.mkdir(parents=True, exist_ok=True)
        self.keep_cluster = keep_cluster
        self.cluster_name = cluster_name
        self.cluster: KindCluster = shared_cluster(
            cluster_name,
            kubernetes_version=kubernetes_version,
            keep=keep_cluster,
            manager=cluster_manager,
        )
        if not self.cluster.setup_steps and not self.cluster.ready:
            before, after = _setup_steps(
                kubectl=kubectl,
                image=image,
                build_image=build_image,
                dockerfile=dockerfile,
                metrics_server=metrics_server,
                metrics_server_manifest=metrics_server_manifest,
                metrics_pipeline=metrics_pipeline,
                metrics_timeout_s=metrics_timeout_s,
                fake_gpus_per_node=fake_gpus_per_node,
            )
            self.cluster.prepare_steps.extend(before)
            self.cluster.setup_steps.extend(after)
        self.cluster.ensure()  # once per run: later backends find it ready
        super().__init__(
            workdir,
            context=self.cluster.context,
            allowed_contexts=[self.cluster.context],
            chaos_allowed=chaos_allowed,
            kubeconfig=str(self.cluster.kubeconfig),
            kubectl=kubectl,
            **kube_options,
        )

    # setup steps -----------------------------------------------------------------------------
    @staticmethod
    def _advertise_gpus(api: KubeApi, per_node: int) -> None:
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

    # hang_pod: KubeBackend's (a hostPID helper pod on the node, `kube.hang`), so kind runs the
    # same path as a real cluster; the image is loaded on every node, so IfNotPresent finds it.

    def teardown(self) -> None:
        """The namespace goes; the cluster stays for the run's other backends (its end deletes
        it: `harness.backends.kind_cluster.close_clusters`)."""
        super().teardown()
