"""Nothing outlives a run: owner-stamped run ids, a pid ledger, stale sweeps. (Signal and exit
teardown of live backends: `harness.backends.signal_cleanup`.)

Every run is named `<run-id>@<owner-pid>.<owner-start-ticks>`; that name is the cgroup
directory and the ledger file in the state dir. A run whose owner process is gone is stale:
`cleanup_stale()` kills its processes (pid + start time checked, so a recycled pid is never
hit), removes its cgroups and its Docker containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from harness.backends.local.kubelet import cgroups, volumes
from harness.backends.local.paths import STATE_DIR


def start_ticks(pid: int) -> int | None:
    """Process start time (clock ticks since boot), field 22 of /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def run_name(run_id: str) -> str:
    pid = os.getpid()
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_id)[:60]
    return f"{safe}@{pid}.{start_ticks(pid)}"


def owner_alive(name: str) -> bool:
    _, _, owner = name.rpartition("@")
    pid_s, _, ticks = owner.partition(".")
    if not pid_s.isdigit():
        return True  # not ours to judge
    return str(start_ticks(int(pid_s))) == ticks


class Ledger:
    """The pids and containers a run started, on disk so another process can clean up after it."""

    def __init__(self, name: str) -> None:
        self.path = STATE_DIR / f"{name}.json"
        self.pids: dict[int, int | None] = {}
        self.containers: set[str] = set()
        self._lock = threading.Lock()

    def _save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pids": self.pids, "containers": sorted(self.containers)}))
        tmp.replace(self.path)

    def add_pid(self, pid: int) -> None:
        with self._lock:
            self.pids[pid] = start_ticks(pid)
            self._save()

    def drop_pid(self, pid: int) -> None:
        with self._lock:
            self.pids.pop(pid, None)
            self._save()

    def add_container(self, cid: str) -> None:
        with self._lock:
            self.containers.add(cid)
            self._save()

    def drop_container(self, cid: str) -> None:
        with self._lock:
            self.containers.discard(cid)
            self._save()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def kill_pid_checked(pid: int, ticks: int | None, sig: int = signal.SIGKILL) -> bool:
    """Signal a pid only if it is still the process we started (same start time)."""
    if ticks is not None and start_ticks(pid) != ticks:
        return False
    try:
        os.killpg(pid, sig)  # replicas lead their own session/process group
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return True


def docker_rm(ids: list[str]) -> None:
    if ids:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True, timeout=60)


def cleanup_stale() -> list[str]:
    """Remove leftovers (processes, cgroups, containers, emptyDir directories) of runs whose
    owner is dead."""
    removed: list[str] = []
    names = set(cgroups.run_dirs())
    if STATE_DIR.is_dir():
        names.update(p.stem for p in STATE_DIR.glob("*@*.json"))
    for name in sorted(names):
        if owner_alive(name):
            continue
        ledger = STATE_DIR / f"{name}.json"
        data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(ledger.read_text())
        for pid_s, ticks in (data.get("pids") or {}).items():
            kill_pid_checked(int(pid_s), ticks)
        docker_rm(list(data.get("containers") or []))
        cgroups.remove_run(name)
        volumes.remove_run(name)
        with contextlib.suppress(FileNotFoundError):
            ledger.unlink()
        removed.append(name)
    return removed
