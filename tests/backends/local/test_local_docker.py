"""The docker runtime against a real engine: replicas are containers of the Deployment's image.

Needs a running Docker engine and the reference image (`nox -s image` builds
`gauntlet-inference:dev`); the stand-in server is bind-mounted into it through a hostPath
volume, so the same spec also exercises the volume and limit translation.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from standin_specs import bundle, deployment

from harness.backends.local import LocalBackend
from harness.backends.local.kubelet import volumes
from harness.backends.local.kubelet.runtime import docker_available

IMAGE = "gauntlet-inference:dev"
HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]


@pytest.fixture(scope="module", autouse=True)
def engine_and_image() -> None:
    ok, why = docker_available()
    if not ok:
        pytest.skip(why)
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        pytest.skip(f"image {IMAGE} not built here (build it with `nox -s image`)")


def in_container(**kw: Any) -> dict[str, Any]:
    dep = deployment(**kw)
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    c["image"] = IMAGE
    c["command"] = ["python3", "/standin/standin_server.py"]
    c["volumeMounts"] = [{"name": "standin", "mountPath": "/standin", "readOnly": True}]
    c["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    spec["volumes"] = [{"name": "standin", "hostPath": {"path": str(HERE), "type": "Directory"}}]
    return dep


def containers_of(run: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=gauntlet.run={run}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_containers_serve_behind_the_service_and_go_away(tmp_path: Path) -> None:
    with LocalBackend(tmp_path, runtime="docker", probe_jitter=False) as b:
        assert b.limits_enforced
        b.deploy(bundle(in_container(replicas=2, memory_limit="256Mi")))
        b.wait_ready(2, timeout_s=120)
        ids = containers_of(b.run)
        assert len(ids) == 2, f"one container per replica, got {ids}"
        info = json.loads(
            subprocess.run(
                ["docker", "inspect", ids[0]], capture_output=True, text=True, check=True
            ).stdout
        )[0]
        assert info["HostConfig"]["Memory"] == 256 * 2**20
        assert info["HostConfig"]["NetworkMode"] == "host"
        assert "ALL" in (info["HostConfig"]["CapDrop"] or [])
        assert any(m["Destination"] == "/standin" and not m["RW"] for m in info["Mounts"])
        served = set()
        for _ in range(20):
            with urllib.request.urlopen(b.service_url() + "/", timeout=10) as r:
                assert r.status == 200
                served.add(r.headers.get("x-gauntlet-pod"))
        assert served == {p.name for p in b.pods()}, "both Ready containers get traffic"
        run = b.run
    assert containers_of(run) == [], "teardown removes every container of the run"


def test_container_over_its_limit_is_oom_killed_137(tmp_path: Path) -> None:
    with LocalBackend(tmp_path, runtime="docker", probe_jitter=False, backoff_scale=0.1) as b:
        b.deploy(bundle(in_container(alloc_mb=200, memory_limit="64Mi", probes={})))
        b.wait_until(lambda: any(p.restarts >= 1 for p in b.pods()), 90, what="an OOM restart")
        term = b.pods()[0].containerStatuses[0].lastState.terminated
        assert term is not None and term.reason == "OOMKilled" and term.exitCode == 137
        assert any(e.reason == "OOMKilling" for e in b.events())


def test_init_container_fills_the_pods_empty_dir(tmp_path: Path) -> None:
    """The common model-download shape: an init container writes into an emptyDir, the serving
    container (another container, same pod) reads it, and the directory goes with the pod."""
    dep = in_container()
    spec = dep["spec"]["template"]["spec"]
    main = spec["containers"][0]
    main["command"] = ["sh", "-c", "test -s /work/model && exec python3 /standin/standin_server.py"]
    main["volumeMounts"].append({"name": "work", "mountPath": "/work"})
    spec["volumes"].append({"name": "work", "emptyDir": {}})
    spec["initContainers"] = [
        {
            "name": "fetch-model",
            "image": IMAGE,
            "command": ["sh", "-c", "sleep 1; echo weights > /work/model"],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            "resources": {"limits": {"memory": "64Mi"}},
        }
    ]
    with LocalBackend(tmp_path, runtime="docker", probe_jitter=False) as b:
        b.deploy(bundle(dep))
        b.wait_ready(1, timeout_s=120)
        pod = b.pods()[0]
        init = pod.initContainerStatuses[0]
        assert init.state.terminated is not None and init.state.terminated.reason == "Completed"
        assert pod.restarts == 0, "the container found the init container's file at its first start"
        assert [e.message.split()[-1] for e in b.events() if e.reason == "Started"] == [
            "fetch-model",
            "server",
        ]
        run = b.run
    assert containers_of(run) == []
    assert not list(Path(volumes.DISK_ROOT / run).glob("*")), "the pod's emptyDir went with it"
