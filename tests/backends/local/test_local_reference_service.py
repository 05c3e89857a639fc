"""The real reference service (`gauntlet serve`, tiny model) as a replica of the local backend."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml

import harness.cli.serve  # noqa: F401  (`gauntlet serve` is the replica's command)
import reference_service.server  # noqa: F401
from harness.backends.local import LocalBackend
from harness.manifests.bundle import ManifestBundle

ROOT = Path(__file__).resolve().parents[3]
# Extended: certify and the self-test matrix drive the real service on this backend in CI.
pytestmark = [pytest.mark.timeout(300), pytest.mark.extended]


def test_reference_service_serves_through_the_service(tmp_path: Path, tiny_model: Path) -> None:
    dep_file = ROOT / "manifests/base/deployment.yaml"
    dep = yaml.safe_load(dep_file.read_text())
    dep["spec"]["replicas"] = 1
    c = dep["spec"]["template"]["spec"]["containers"][0]
    for e in c["env"]:
        if e["name"] == "GAUNTLET_MODEL_DIR":
            e["value"] = str(tiny_model)
    c["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}
    with LocalBackend(tmp_path / "backend", probe_jitter=False) as b:
        b.deploy(ManifestBundle([dep], source=str(dep_file)))
        b.wait_ready(timeout_s=240)
        body = json.dumps({"model": "tiny", "prompt": "hello", "max_tokens": 4}).encode()
        req = urllib.request.Request(
            b.service_url() + "/v1/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200
            assert r.headers["x-gauntlet-pod"] == b.pods()[0].name
        assert b.pods()[0].containerStatuses[0].started
