"""Per-pod cgroup v1 groups: the kernel mechanism a kubelet uses to enforce container limits.

Layout: `<controller>/gauntlet/<run>/<pod>` for the memory, cpu and cpuacct controllers. The
memory limit goes in `memory.limit_in_bytes` (so the kernel OOM-kills an over-limit replica and
counts it in `memory.oom_control`'s `oom_kill`), the CPU limit becomes a CFS quota, usage comes
from `cpuacct.usage` and `memory.usage_in_bytes - total_inactive_file` (the working set).

The process joins its groups before it execs the real command: a tiny `sh` shim writes its own
pid into each `cgroup.procs` and then `exec`s (no Python `preexec_fn`, which is unsafe in a
threaded parent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "gauntlet"
CFS_PERIOD_US = 100_000
CONTROLLERS = ("memory", "cpu", "cpuacct")


def support() -> tuple[bool, str]:
    """Whether limits can be enforced here, and why not when they cannot."""
    if os.geteuid() != 0:
        return False, "not root: cannot create cgroups (limits are monitored, not enforced)"
    mem = CGROUP_ROOT / "memory"
    if not (mem / "memory.limit_in_bytes").exists():
        if (CGROUP_ROOT / "cgroup.controllers").exists() and "memory" in (
            CGROUP_ROOT / "cgroup.controllers"
        ).read_text():
            return False, "cgroup v2 unified hierarchy: only cgroup v1 is supported by this backend"
        return False, "no cgroup v1 memory controller at /sys/fs/cgroup/memory"
    if not os.access(mem, os.W_OK):
        return False, "/sys/fs/cgroup/memory is not writable (read-only mount?)"
    return True, "cgroup v1 memory controller, root"


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: Path, default: int | None = None) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default


class PodCgroup:
    """The cgroups of one pod. All containers of the pod share them (one container in practice)."""

    def __init__(self, run_dir: str, pod: str) -> None:
        self._at(f"{PARENT}/{run_dir}/{pod}")

    def _at(self, rel: str) -> None:
        self.rel = rel
        self.paths = {c: CGROUP_ROOT / c / rel for c in CONTROLLERS if (CGROUP_ROOT / c).is_dir()}

    @classmethod
    def of_process(cls, pid: int) -> PodCgroup | None:
        """The (v1) groups a process already lives in, e.g. a container the engine created:
        read-only use (readings), never create/remove."""
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            _, ctls, path = line.split(":", 2)
            if "memory" in ctls.split(",") and path not in ("", "/"):
                group = cls.__new__(cls)
                group._at(path.lstrip("/"))
                return group if group.memory.is_dir() else None
        return None

    @property
    def memory(self) -> Path:
        return self.paths["memory"]

    def create(self, memory_limit: int | None, cpu_limit: float | None) -> None:
        for ctl, path in self.paths.items():
            path.mkdir(parents=True, exist_ok=True)
            if ctl == "memory":
                if (path / "memory.swappiness").exists():
                    _write(path / "memory.swappiness", "0")
                if memory_limit is not None:
                    _write(path / "memory.limit_in_bytes", str(memory_limit))
                    memsw = path / "memory.memsw.limit_in_bytes"
                    if memsw.exists():  # no swap escape: memory+swap == memory
                        with contextlib.suppress(OSError):
                            _write(memsw, str(memory_limit))
            if ctl == "cpu" and cpu_limit is not None:
                _write(path / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(path / "cpu.cfs_quota_us", str(max(1000, int(cpu_limit * CFS_PERIOD_US))))

    def attach_argv(self, argv: list[str]) -> list[str]:
        """Wrap argv so the process is in every group of the pod before the real exec."""
        procs = [str(p / "cgroup.procs") for p in self.paths.values()]
        script = (
            'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 126; shift; done; '
            'shift; exec "$@"'
        )
        return ["/bin/sh", "-c", script, "gauntlet-cgroup-attach", *procs, "--", *argv]

    # readings ---------------------------------------------------------------------------
    def pids(self) -> list[int]:
        out: set[int] = set()
        for path in self.paths.values():
            with contextlib.suppress(OSError):
                out.update(int(x) for x in (path / "cgroup.procs").read_text().split())
        return sorted(out)

    def oom_kills(self) -> int:
        try:
            for line in (self.memory / "memory.oom_control").read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        except OSError:
            pass
        return 0

    def working_set(self) -> int | None:
        usage = _read_int(self.memory / "memory.usage_in_bytes")
        if usage is None:
            return None
        inactive = 0
        with contextlib.suppress(OSError):
            for line in (self.memory / "memory.stat").read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "total_inactive_file":
                    inactive = int(v)
        return max(0, usage - inactive)

    def cpu_throttling(self) -> tuple[int, int, int] | None:
        """cpu.stat: (nr_periods, nr_throttled, throttled_time ns), cumulative."""
        path = self.paths.get("cpu")
        try:
            stat = (
                dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
                if path
                else {}
            )
            return int(stat["nr_periods"]), int(stat["nr_throttled"]), int(stat["throttled_time"])
        except (OSError, KeyError, ValueError):
            return None

    def cpu_usage_ns(self) -> int | None:
        path = self.paths.get("cpuacct")
        return _read_int(path / "cpuacct.usage") if path else None

    # teardown ---------------------------------------------------------------------------
    def kill_all(self, sig: int = signal.SIGKILL) -> int:
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return len(pids)

    def remove(self, timeout_s: float = 10.0) -> bool:
        """Kill what is left in the groups and remove them; True when every directory is gone."""
        deadline = time.monotonic() + timeout_s
        while self.kill_all(signal.SIGKILL) and time.monotonic() < deadline:
            for pid in (
                self.pids()
            ):  # a SIGSTOPped process dies on SIGKILL too, but needs CONT for v1 freezer cases
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGCONT)
            time.sleep(0.02)
        ok = True
        for path in self.paths.values():
            ok &= _rmdir_retry(path, deadline)
        return ok


def _rmdir_retry(path: Path, deadline: float) -> bool:
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def remove_run(run_dir: str, timeout_s: float = 10.0) -> bool:
    """Remove `gauntlet/<run_dir>` in every controller (pods first)."""
    ok = True
    deadline = time.monotonic() + timeout_s
    for ctl in CONTROLLERS:
        base = CGROUP_ROOT / ctl / PARENT / run_dir
        if not base.is_dir():
            continue
        for child in base.iterdir():
            if child.is_dir():
                ok &= PodCgroup(run_dir, child.name).remove(max(0.5, deadline - time.monotonic()))
        ok &= _rmdir_retry(base, deadline)
    return ok


def run_dirs() -> set[str]:
    found: set[str] = set()
    for ctl in CONTROLLERS:
        base = CGROUP_ROOT / ctl / PARENT
        if base.is_dir():
            found.update(p.name for p in base.iterdir() if p.is_dir())
    return found
