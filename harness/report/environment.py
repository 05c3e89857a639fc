"""Where a certification ran: a verdict from a laptop without cgroups is not one from a node."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil

from harness import machine_speed
from harness.profile import Profile
from harness.report.schema import CgroupInfo, EnvironmentInfo, MachineSpeedInfo
from harness.resources import source_checkout

CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")
CGROUP_V2_ROOT = Path("/sys/fs/cgroup")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _run_git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _git(*args: str) -> str | None:
    """git in gauntlet's own source checkout; None for an installed wheel, and for a checkout
    that is not the top of a git repository (an unpacked sdist inside some other repo)."""
    repo = source_checkout()
    if repo is None:
        return None
    top = _run_git(repo, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != repo:
        return None
    return _run_git(repo, *args)


def cgroup_info(limits_enforced: bool | None = None) -> CgroupInfo:
    """Is a memory controller usable by us? `limits_enforced` from the backend wins when known."""
    root = os.geteuid() == 0
    controller: str | None = None
    if (CGROUP_V1_MEMORY / "memory.limit_in_bytes").exists():
        controller = str(CGROUP_V1_MEMORY)
    else:
        controllers = CGROUP_V2_ROOT / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            controller = str(CGROUP_V2_ROOT)
    usable = bool(root and controller)
    enforced = usable if limits_enforced is None else limits_enforced
    if enforced:
        note = "memory limits enforced by the kernel (an over-limit replica is OOM-killed)"
    elif not controller:
        note = "no cgroup memory controller: limits monitored, not enforced"
    elif not root:
        note = "not root: limits monitored, not enforced"
    else:
        note = "limits monitored, not enforced"
    return CgroupInfo(memory_controller=controller, root=root, limits_enforced=enforced, note=note)


def collect_environment(limits_enforced: bool | None = None) -> EnvironmentInfo:
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return EnvironmentInfo(
        host=socket.gethostname(),
        platform=platform.platform(),
        cpu_cores=os.cpu_count() or 0,
        memory_bytes=psutil.virtual_memory().total,
        python=sys.version.split()[0],
        torch=_version("torch"),  # metadata only: importing torch costs seconds
        gauntlet=_version("gauntlet") or "unknown",
        git_commit=commit,
        git_dirty=dirty,
        cgroup=cgroup_info(limits_enforced),
    )


def machine_speed_info(profile: Profile) -> MachineSpeedInfo | None:
    """This machine against the one `profile` was sized on (its `machine:`); None without."""
    sized = profile.machine
    if sized is None:
        return None
    speed = machine_speed.probe(sized.preset)
    ms = speed.decode_step_ms
    return MachineSpeedInfo(
        preset=sized.preset,
        decode_step_ms=ms,
        sized_at_ms=sized.decode_step_ms,
        slower_by=round(sized.slower_by(ms), 3) if ms is not None else None,
        slower_allowed=sized.slower_allowed,
        how=speed.how,
    )
