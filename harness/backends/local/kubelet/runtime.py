"""Container runtimes: a replica as a host process (in its pod's cgroups) or as a Docker container.

Both give the kubelet the same handle: start, signal the whole container, poll the exit
(with the OOM verdict), list its processes. Docker containers use host networking so every
replica is reached on its own loopback pod IP; bridge addresses (172.x) are never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.backends.local.cleanup import Ledger
from harness.backends.local.kubelet.cgroups import PodCgroup


@dataclass
class ExitInfo:
    exit_code: int
    signal: int | None
    oom_killed: bool
    finished_at: float
    oom_kills: int = 0  # new kernel OOM kills in the pod's cgroup during this container's life


class ContainerHandle:
    pid: int | None = None
    cgroup: PodCgroup | None = None

    def poll(self) -> ExitInfo | None:
        raise NotImplementedError

    def signal(self, sig: int) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The container's processes: its cgroup's members, else the main process's tree."""
        if self.cgroup:
            return self.cgroup.pids()
        if not self.pid:
            return []
        try:
            return [self.pid] + [c.pid for c in psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def exec_argv(self, argv: list[str]) -> list[str]:
        """How to run a command inside the container (exec probes, preStop exec)."""
        raise NotImplementedError

    def wait(self, timeout_s: float, poll_s: float = 0.05) -> ExitInfo | None:
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.poll()
            if info is not None or time.monotonic() >= deadline:
                return info
            time.sleep(poll_s)


def _pdeathsig(argv: list[str]) -> list[str]:
    """Replica dies with its owner even on SIGKILL of the owner (no orphans to sweep)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


class ProcessContainer(ContainerHandle):
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        log: Path,
        cgroup: PodCgroup | None,
        ledger: Ledger,
    ) -> None:
        self.cgroup = cgroup
        self.ledger = ledger
        self.env = env
        self.cwd = cwd
        self._oom_before = cgroup.oom_kills() if cgroup else 0
        full = cgroup.attach_argv(argv) if cgroup else argv
        self._log = open(log, "ab")  # noqa: SIM115 (lives as long as the container)
        self.proc = subprocess.Popen(
            _pdeathsig(full),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        ledger.add_pid(self.pid)
        self._exit: ExitInfo | None = None

    def poll(self) -> ExitInfo | None:
        if self._exit is not None:
            return self._exit
        rc = self.proc.poll()
        if rc is None:
            return None
        now = time.time()
        self.signal(signal.SIGKILL)  # the container ends with its main process (like PID 1 exit)
        self.ledger.drop_pid(self.pid or 0)
        self._log.close()
        sig = -rc if rc < 0 else None
        code = 128 + sig if sig else rc
        new_ooms = (self.cgroup.oom_kills() - self._oom_before) if self.cgroup else 0
        self._exit = ExitInfo(
            code,
            sig,
            oom_killed=(sig == signal.SIGKILL and new_ooms > 0),
            finished_at=now,
            oom_kills=new_ooms,
        )
        return self._exit

    def signal(self, sig: int) -> None:
        """Like a container runtime: SIGTERM (and other catchable signals) go once to the main
        process (PID 1 of a container); SIGKILL/SIGSTOP/SIGCONT reach every process of it."""
        if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT):
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self.proc.pid, sig)
            return
        if self.cgroup:
            self.cgroup.kill_all(sig)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def exec_argv(self, argv: list[str]) -> list[str]:
        return self.cgroup.attach_argv(argv) if self.cgroup else argv


class DockerContainer(ContainerHandle):
    """`docker run --network host` of the Deployment's image; limits, volumes and security
    context come as `run_flags` (see docker_args.py)."""

    def __init__(
        self,
        name: str,
        image: str,
        command: list[str],
        args: list[str],
        env: dict[str, str],
        cwd: str | None,
        run_flags: list[str],
        labels: dict[str, str],
        ledger: Ledger,
        log: Path,
    ) -> None:
        self.name = name
        self.ledger = ledger
        self.log = log
        argv = [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--init=false",
            *run_flags,
        ]
        for k, v in labels.items():
            argv += ["--label", f"{k}={v}"]
        for k, v in env.items():
            argv += ["-e", f"{k}={v}"]
        if cwd:
            argv += ["-w", cwd]
        if command:
            argv += ["--entrypoint", command[0], image, *command[1:], *args]
        else:
            argv += [image, *args]
        ledger.add_container(name)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            ledger.drop_container(name)
            raise RuntimeError(f"docker run failed: {out.stderr.strip()}")
        self.pid = self._state().get("Pid") or None
        # The engine's cgroup of the container: the sampler reads working set, CPU and OOM
        # kills from it, as the kubelet's cAdvisor would.
        self.cgroup = PodCgroup.of_process(self.pid) if self.pid else None
        self._proc = _process(self.pid)
        self._exit: ExitInfo | None = None

    def _state(self) -> dict:
        out = subprocess.run(
            ["docker", "inspect", "-f", "{{json .State}}", self.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}

    def poll(self) -> ExitInfo | None:
        if self._exit is not None:
            return self._exit
        # The kubelet polls often: watch the container's init process from the host and ask the
        # engine (a `docker inspect` process each time) only once it is gone.
        if _alive(self._proc):
            return None
        st = self._state()
        if st.get("Running") or st.get("Paused"):
            self._proc = _process(st.get("Pid"))
            return None
        code = int(st.get("ExitCode", 137))
        oom = bool(st.get("OOMKilled"))
        with contextlib.suppress(OSError, subprocess.SubprocessError), open(self.log, "ab") as f:
            subprocess.run(
                ["docker", "logs", self.name], stdout=f, stderr=subprocess.STDOUT, timeout=30
            )
        subprocess.run(["docker", "rm", "-f", "-v", self.name], capture_output=True, timeout=60)
        self.ledger.drop_container(self.name)
        self._exit = ExitInfo(
            code, signal.SIGKILL if code == 137 else None, oom, time.time(), int(oom)
        )
        return self._exit

    def signal(self, sig: int) -> None:
        if sig == signal.SIGSTOP:
            cmd = ["docker", "pause", self.name]
        elif sig == signal.SIGCONT:
            cmd = ["docker", "unpause", self.name]
        else:
            cmd = ["docker", "kill", "-s", signal.Signals(sig).name, self.name]
        subprocess.run(cmd, capture_output=True, timeout=30)

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["docker", "exec", self.name, *argv]


def _process(pid: int | None) -> psutil.Process | None:
    """A handle that notices PID reuse (psutil compares the start time)."""
    try:
        return psutil.Process(pid) if pid else None
    except psutil.Error:
        return None


def _alive(proc: psutil.Process | None) -> bool:
    try:
        return proc is not None and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def docker_available() -> tuple[bool, str]:
    if not shutil.which("docker"):
        return False, "no docker CLI on PATH"
    try:
        out = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"docker did not answer: {err}"
    if out.returncode != 0:
        return False, f"no Docker engine answers: {out.stderr.strip()[:200]}"
    return True, f"docker engine {out.stdout.strip()}"
