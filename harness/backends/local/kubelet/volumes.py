"""emptyDir volumes of the docker runtime: one host directory per pod and volume.

An emptyDir lives as long as its pod: every container of the pod (init containers included)
sees the same directory, and it survives container restarts. Each is a host directory that
all containers of the pod bind-mount; `medium: Memory` ones live on the host's /dev/shm
(tmpfs, so their pages are charged to the memory cgroup of the container that writes them,
as on a node). They are removed with the pod, at teardown, and by `cleanup_stale()`.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from harness.backends.local.paths import STATE_DIR

DISK_ROOT = STATE_DIR / "volumes"
MEMORY_ROOT = Path("/dev/shm/gauntlet")


def empty_dirs(pod_spec: dict[str, Any], run: str, pod: str) -> dict[str, str]:
    """Create the pod's emptyDir directories (world-writable, as the kubelet makes them) and
    return volume name -> host path."""
    out: dict[str, str] = {}
    for v in pod_spec.get("volumes") or []:
        if "emptyDir" not in v:
            continue
        medium = (v.get("emptyDir") or {}).get("medium")
        root = MEMORY_ROOT if medium == "Memory" and MEMORY_ROOT.parent.is_dir() else DISK_ROOT
        path = root / run / pod / str(v.get("name"))
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # mkdir's mode is masked by the umask
        out[str(v.get("name"))] = str(path)
    return out


def remove_pod(run: str, pod: str) -> None:
    for root in (DISK_ROOT, MEMORY_ROOT):
        with contextlib.suppress(OSError):
            shutil.rmtree(root / run / pod)


def remove_run(run: str) -> None:
    for root in (DISK_ROOT, MEMORY_ROOT):
        with contextlib.suppress(OSError):
            shutil.rmtree(root / run)
