"""metrics-server on the kind cluster: the pinned manifest shipped in the repo, installed by
default, and a bounded wait until its APIService `v1beta1.metrics.k8s.io` is Available.

Until the aggregator marks that APIService Available (metrics-server's pod Ready, its Service
endpoints reachable), every metrics.k8s.io request answers 503, so the HPA and the recorder would
start blind; the backend hands over only once it is Available.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from harness.backends.base import BackendError
from harness.backends.kube.api import KubeApi, KubeApiError, resource_path
from harness.errors import InputError, SetupError
from harness.resources import manifests_dir

log = logging.getLogger("harness.backends.kind")

METRICS_SERVER_VERSION = "v0.8.1"
METRICS_APISERVICE = "v1beta1.metrics.k8s.io"
INSECURE_TLS = "--kubelet-insecure-tls"


#: what serves the HPA's Pods metrics on kind (manifests/kind/metrics-pipeline: Prometheus +
#: prometheus-adapter); it registers only the custom metrics API
PIPELINE_APISERVICE = "v1beta1.custom.metrics.k8s.io"


def pipeline_dir() -> Path:
    return manifests_dir() / "kind" / "metrics-pipeline"


def pipeline_objects(directory: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The rendered metrics pipeline and the images it runs."""
    from harness.manifests.render import render

    objects = render(directory or pipeline_dir()).objects
    images = [
        c["image"]
        for o in objects
        if o.get("kind") == "Deployment"
        for c in o["spec"]["template"]["spec"].get("containers") or []
    ]
    return objects, images


def default_manifest() -> Path:
    """The pinned metrics-server manifest (`manifests/kind/metrics-server-<version>.yaml`)."""
    return manifests_dir() / "kind" / f"metrics-server-{METRICS_SERVER_VERSION}.yaml"


def prepare_manifest(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifest's objects with `--kubelet-insecure-tls` on metrics-server's container (kind's
    kubelet certificates are self-signed), and the images it runs."""
    try:
        objects = [o for o in yaml.safe_load_all(path.read_text()) if o]
    except (OSError, yaml.YAMLError) as err:
        raise InputError(
            f"cannot read the metrics-server manifest: {err}",
            file=path,
            fix="pass a components.yaml of a metrics-server release",
        ) from None
    deployments = [
        o
        for o in objects
        if o.get("kind") == "Deployment"
        and (o.get("metadata") or {}).get("name") == "metrics-server"
    ]
    if len(deployments) != 1:
        raise InputError(
            "no Deployment named metrics-server",
            file=path,
            field="kind: Deployment",
            fix="pass metrics-server's release components.yaml",
        )
    images: list[str] = []
    for c in deployments[0]["spec"]["template"]["spec"]["containers"]:
        images.append(c["image"])
        if c.get("name") == "metrics-server":
            args = c.setdefault("args", [])
            if INSECURE_TLS not in args:
                args.append(INSECURE_TLS)
    return objects, images


def apiservice_state(api: KubeApi, name: str = METRICS_APISERVICE) -> tuple[bool, str]:
    """(Available, what was seen) for APIService `name`."""
    try:
        obj = api.get(resource_path("apiregistration.k8s.io/v1", "APIService", name=name))
    except KubeApiError as err:
        if err.status == 404:
            return False, f"APIService {name} not found"
        return False, f"reading APIService {name}: {err}"
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Available":
            ok = c.get("status") == "True"
            why = f"Available={c.get('status')}"
            if c.get("reason"):
                why += f" reason={c['reason']}"
            if c.get("message"):
                why += f" message={c['message']!r}"
            return ok, f"APIService {name}: {why}"
    return False, f"APIService {name}: no Available condition yet"


def wait_apiservice_available(
    api: KubeApi,
    name: str = METRICS_APISERVICE,
    *,
    timeout_s: float = 180.0,
    poll_s: float = 2.0,
) -> float:
    """Seconds until APIService `name` has condition Available=True; SetupError naming the last
    state seen when `timeout_s` passes first."""
    t0 = time.monotonic()
    while True:
        ok, seen = apiservice_state(api, name)
        if ok:
            return time.monotonic() - t0
        if time.monotonic() - t0 >= timeout_s:
            serves = "metrics-server" if name == METRICS_APISERVICE else "the metrics pipeline"
            raise SetupError(
                f"{serves} not available within {timeout_s:.0f} s: last seen {seen} "
                f"(check: kubectl get apiservice {name}; kubectl describe the Deployment behind "
                "it)"
            )
        time.sleep(poll_s)


def local_image(image: str) -> bool:
    res = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, text=True, check=False
    )
    return res.returncode == 0


def apply_manifest(
    kubectl: str, kubeconfig: Path, context: str, objects: list[dict[str, Any]]
) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="gauntlet-apply-") as f:
        yaml.safe_dump_all(objects, f, sort_keys=False)
        f.flush()
        res = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "--context", context, "apply", "-f", f.name],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if res.returncode != 0:
        raise BackendError(f"kubectl apply failed: {res.stderr.strip()[-600:]}")
