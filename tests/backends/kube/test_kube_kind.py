"""KindBackend: prerequisite check (here) and real-cluster runs.

The real-cluster runs are marked `-m cluster` and run where Docker exists.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from harness.backends.kind import KindBackend, check_prerequisites
from harness.errors import SetupError
from harness.resources import kind_cluster_config


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


HAVE_KIND = _docker_ok() and shutil.which("kind") is not None
NO_KIND_REASON = "needs a reachable Docker daemon and the kind binary (absent on this machine)"


def test_kind_config_has_three_zones_of_workers() -> None:
    cfg = yaml.safe_load(kind_cluster_config().read_text())
    roles = [n["role"] for n in cfg["nodes"]]
    assert roles.count("control-plane") == 1
    zones = [
        n.get("labels", {}).get("topology.kubernetes.io/zone")
        for n in cfg["nodes"]
        if n["role"] == "worker"
    ]
    assert sorted(zones) == ["zone-a", "zone-b", "zone-c"]


@pytest.mark.skipif(
    HAVE_KIND, reason="docker and kind are present: the missing-prerequisite path cannot be shown"
)
def test_missing_prerequisites_fail_fast_with_one_message(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(SetupError) as err:
        KindBackend(tmp_path)
    assert time.monotonic() - t0 < 30  # seconds, not a cluster-creation timeout
    text = str(err.value)
    assert text.startswith("the kind backend cannot start:")
    assert ("docker" in text) or ("kind not found" in text)
    assert "kind.sigs.k8s.io" in text or "apt-get install docker.io" in text or "dockerd" in text
    with pytest.raises(SetupError):
        check_prerequisites()


@pytest.mark.cluster
@pytest.mark.skipif(not HAVE_KIND, reason=NO_KIND_REASON)
def test_kind_deploy_and_zone_outage(
    tmp_path: Path,
) -> None:  # pragma: no cover - needs docker + kind
    from harness.manifests.bundle import ManifestBundle

    out = subprocess.run(
        ["kubectl", "kustomize", "manifests/overlays/kind"],
        capture_output=True,
        text=True,
        check=True,
    )
    bundle = ManifestBundle.from_yaml(out.stdout, source="manifests/overlays/kind")
    with KindBackend(tmp_path, cluster_name="gauntlet-test") as b:
        b.deploy(bundle)
        status = b.wait_ready(timeout_s=600)
        assert status.readyReplicas >= 1
        zone = next(p.zone for p in b.pods() if p.zone)
        rec = b.zone_outage(zone)
        assert rec.landed
        b.restore_zone(zone)
