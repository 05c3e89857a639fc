"""The in-cluster load Job's container, run for real from the reference image on a Docker
engine: the Job's own command, env and security context (read-only root, /tmp an emptyDir,
no root), against the service started from the same image. What only a cluster adds (the
Service's DNS name, kube-proxy) is stood in for by the host network and 127.0.0.1.

Needs a running Docker engine and `gauntlet-inference:dev` (`python -m
harness.backends.kind_image` builds it); skipped with the reason otherwise."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness.backends.kube.load_job import job_manifest
from harness.backends.local.kubelet.runtime import docker_available
from harness.load.incluster import parse_output, unpack_result
from harness.load.spec import LoadSpec
from harness.profile import load_profile

IMAGE = "gauntlet-inference:dev"
SERVICE = "gauntlet-load-job-svc"
URL = "http://127.0.0.1:8000"  # the image's EXPOSE; the host network stands in for the Service
pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def service() -> object:
    ok, why = docker_available()
    if not ok:
        pytest.skip(why)
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        pytest.skip(f"image {IMAGE} not built here (python -m harness.backends.kind_image)")
    subprocess.run(["docker", "rm", "-f", SERVICE], capture_output=True)
    subprocess.run(
        ["docker", "run", "-d", "--name", SERVICE, "--network", "host", "--memory", "2g", IMAGE],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(URL + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the service container did not become Ready within 120 s")
        yield SERVICE
    finally:
        subprocess.run(["docker", "rm", "-f", SERVICE], capture_output=True)


def test_the_jobs_container_runs_the_generator_from_the_image(
    service: object, tmp_path: Path
) -> None:
    spec = LoadSpec.from_profile(
        load_profile("local"),
        URL,
        allow_targets=[URL],
        rate_rps=8.0,
        duration_s=6.0,
        load_path="service",
    )
    job = job_manifest(spec, name="load-1", namespace="ns-load", run_id="r1", image=IMAGE)
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    env = [a for e in c["env"] for a in ("-e", f"{e['name']}={e['value']}")]
    cmd = [
        *("docker", "run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp"),
        *("--cap-drop", "ALL", "--security-opt", "no-new-privileges", *env),
        *("--entrypoint", c["command"][0], IMAGE, *c["command"][1:]),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    got = parse_output(out.stdout)
    assert got.error is None and got.payload_problem is None and got.started_at is not None
    assert got.payload is not None
    result = unpack_result(got.payload, tmp_path)
    assert result.valid, result.invalid_reasons
    assert result.requests >= 40 and result.ok == result.requests and not result.errors
    assert result.load_path == "service" and len(result.records()) == result.requests
