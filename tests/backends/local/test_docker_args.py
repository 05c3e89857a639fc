"""Pod spec -> docker run flags (no engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from standin_specs import deployment

from harness.backends.local.kubelet import volumes
from harness.backends.local.kubelet.docker_args import docker_run_args
from harness.backends.local.podspec.pod_template import PodTemplate, parse_template
from harness.errors import InputError


def _template(dep: dict[str, Any]) -> PodTemplate:
    return parse_template(dep, "deployment.yaml")


def test_limits_volumes_and_security_context_become_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment(memory_limit="64Mi")
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    c["resources"]["limits"]["cpu"] = "500m"
    c["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    }
    spec["securityContext"] = {"runAsUser": 10001, "runAsGroup": 10001}
    c["volumeMounts"] = [
        {"name": "model", "mountPath": "/models", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    spec["volumes"] = [
        {"name": "model", "hostPath": {"path": "/srv/models"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    t = _template(dep)
    monkeypatch.setattr(volumes, "DISK_ROOT", tmp_path / "disk")
    monkeypatch.setattr(volumes, "MEMORY_ROOT", tmp_path / "shm")
    dirs = volumes.empty_dirs(t.spec, "run1", "pod-a")
    run = docker_run_args(t.spec, t.main, dirs)
    f = run.flags
    assert f[f.index("--memory") + 1] == str(64 * 2**20) and f[f.index("--memory-swap") + 1] == str(
        64 * 2**20
    )
    assert f[f.index("--cpus") + 1] == "0.5"
    assert "type=bind,source=/srv/models,destination=/models,readonly" in f
    # emptyDirs are the pod's directories: every container of the pod mounts the same one
    assert f"type=bind,source={tmp_path}/disk/run1/pod-a/scratch,destination=/scratch" in f
    assert f"type=bind,source={tmp_path}/shm/run1/pod-a/shm,destination=/dev/shm" in f
    assert (
        tmp_path / "disk/run1/pod-a/scratch"
    ).stat().st_mode & 0o777 == 0o777  # uid 10001 writes it
    assert f[f.index("--user") + 1] == "10001:10001"
    assert "--read-only" in f and "no-new-privileges" in f
    assert (
        f[f.index("--cap-drop") + 1] == "ALL" and f[f.index("--cap-add") + 1] == "NET_BIND_SERVICE"
    )
    assert run.warnings == ["volume shm: emptyDir sizeLimit is not enforced"]
    volumes.remove_pod("run1", "pod-a")
    assert (
        not (tmp_path / "disk/run1/pod-a").exists() and not (tmp_path / "shm/run1/pod-a").exists()
    )
    # without the pod's directories each container gets a private volume, and says so
    alone = docker_run_args(t.spec, t.main)
    assert "type=volume,destination=/scratch" in alone.flags
    assert f"type=tmpfs,destination=/dev/shm,tmpfs-size={2**30}" in alone.flags
    assert alone.warnings == [
        f"volume {n}: emptyDir not shared with the pod's other containers"
        for n in ("scratch", "shm")
    ]


def test_unsupported_volume_is_a_warning_not_a_silent_skip() -> None:
    dep = deployment()
    spec = dep["spec"]["template"]["spec"]
    spec["containers"][0]["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/app"}]
    spec["volumes"] = [{"name": "cfg", "configMap": {"name": "app"}}]
    t = _template(dep)
    run = docker_run_args(t.spec, t.main)
    assert not any("/etc/app" in x for x in run.flags)
    assert run.warnings == ["volume cfg (configMap) is not mounted by the docker runtime"]


def test_mount_of_an_undeclared_volume_names_file_and_field() -> None:
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "nope", "mountPath": "/x"}
    ]
    with pytest.raises(InputError) as err:
        _template(dep)
    text = str(err.value)
    assert "deployment.yaml" in text and "volumeMounts[0].name" in text and "nope" in text


def test_no_limits_no_flags() -> None:
    t = _template(deployment())
    assert docker_run_args(t.spec, t.main).flags == []
