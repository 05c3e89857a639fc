"""Pod spec -> `docker run` flags: what a kubelet + CRI would set up for the container.

Pure translation (no engine needed, unit-tested in CI). Covered: resources (limits), volumes
(hostPath; emptyDir as the pod's host directory, on disk or in memory), and the securityContext
fields Docker has flags for. Anything else in the pod spec that a container runtime would act on
is returned as a warning, so the run's events say what the local backend did not reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.backends.local.podspec.pod_template import ContainerSpec, VolumeMount
from harness.quantity import memory_bytes


@dataclass
class DockerRunArgs:
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def resource_flags(c: ContainerSpec) -> list[str]:
    flags: list[str] = []
    if c.memory_limit is not None:
        # swap = memory: an over-limit container is OOM-killed, as on a node without swap.
        flags += ["--memory", str(c.memory_limit), "--memory-swap", str(c.memory_limit)]
    if c.cpu_limit is not None:
        flags += ["--cpus", f"{c.cpu_limit:g}"]  # CFS quota, as the kubelet sets from limits.cpu
    return flags


def _mount_flag(m: VolumeMount, empty_dirs: dict[str, str]) -> tuple[list[str], str | None]:
    src = m.volume
    ro = ",readonly" if m.read_only else ""
    if "hostPath" in src:
        path = (src["hostPath"] or {}).get("path")
        if not path:
            return [], f"volume {m.name}: hostPath without a path"
        return ["--mount", f"type=bind,source={path},destination={m.mount_path}{ro}"], None
    if "emptyDir" in src:
        ed = src["emptyDir"] or {}
        host = empty_dirs.get(m.name)
        if host is None:  # no pod directory given: private to this container, gone with it
            if ed.get("medium") == "Memory":
                size = f",tmpfs-size={memory_bytes(ed['sizeLimit'])}" if ed.get("sizeLimit") else ""
                return ["--mount", f"type=tmpfs,destination={m.mount_path}{size}"], (
                    f"volume {m.name}: emptyDir not shared with the pod's other containers"
                )
            return ["--mount", f"type=volume,destination={m.mount_path}{ro}"], (
                f"volume {m.name}: emptyDir not shared with the pod's other containers"
            )
        # The pod's directory (kubelet/volumes.py): shared by its containers, kept across restarts.
        note = (
            f"volume {m.name}: emptyDir sizeLimit is not enforced" if ed.get("sizeLimit") else None
        )
        return ["--mount", f"type=bind,source={host},destination={m.mount_path}{ro}"], note
    kind = next(iter(k for k in src if k != "name"), "unknown")
    return [], f"volume {m.name} ({kind}) is not mounted by the docker runtime"


def security_flags(pod_spec: dict[str, Any], c: ContainerSpec) -> tuple[list[str], list[str]]:
    """Container securityContext over the pod's, as the kubelet merges them."""
    pod_sc = pod_spec.get("securityContext") or {}
    sc = {
        **{k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot") if k in pod_sc},
        **(c.raw.get("securityContext") or {}),
    }
    flags: list[str] = []
    warnings: list[str] = []
    if "runAsUser" in sc:
        user = str(sc["runAsUser"]) + (f":{sc['runAsGroup']}" if "runAsGroup" in sc else "")
        flags += ["--user", user]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if sc.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if sc.get("privileged"):
        flags.append("--privileged")
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        flags += ["--cap-drop", str(cap)]
    for cap in caps.get("add") or []:
        flags += ["--cap-add", str(cap)]
    if sc.get("runAsNonRoot") and str(sc.get("runAsUser", "")) == "0":
        warnings.append(
            "runAsNonRoot with runAsUser 0: the kubelet would refuse to start this container"
        )
    return flags, warnings


def docker_run_args(
    pod_spec: dict[str, Any], c: ContainerSpec, empty_dirs: dict[str, str] | None = None
) -> DockerRunArgs:
    """`empty_dirs`: the pod's emptyDir host directories by volume name (volumes.empty_dirs)."""
    out = DockerRunArgs(flags=resource_flags(c))
    for m in c.mounts:
        flags, note = _mount_flag(m, empty_dirs or {})
        out.flags += flags
        if note:
            out.warnings.append(note)
    sec, warnings = security_flags(pod_spec, c)
    out.flags += sec
    out.warnings += warnings
    return out
