"""Fixtures: the tiny model (built once per session) and real uvicorn servers in subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0  # a loaded 2-core CI machine can take a while to import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`python -m reference_service.server` on 127.0.0.1:<free port>, configured by env."""

    def __init__(self, model_dir: Path, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {
            **os.environ,
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "GAUNTLET_MODEL_DIR": str(model_dir),
            "GAUNTLET_HOST": "127.0.0.1",
            "GAUNTLET_PORT": str(self.port),
            "GAUNTLET_TORCH_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            **{f"GAUNTLET_{k.upper()}": v for k, v in env.items()},
        }
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference_service.server"],
            env=full_env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> None:
        self._wait(lambda r: True, "/healthz", timeout)

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> None:
        self._wait(lambda r: r.status_code == 200, "/startup", timeout)

    def _wait(self, ok: Callable[[httpx.Response], bool], path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited rc={self.proc.returncode}:\n{self.logs()}")
            try:
                if ok(httpx.get(self.url + path, timeout=5)):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not up on {path} after {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reference_service.model_builder import build_model

    out = tmp_path_factory.mktemp("model") / "tiny"
    build_model("tiny", out)
    return out


@pytest.fixture(scope="session")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The shared server: small queue so overload is easy to reach; debug endpoints on."""
    srv = ServerProcess(
        tiny_model_dir,
        tmp_path_factory.mktemp("logs") / "server.log",
        max_num_seqs="8",
        max_queue="8",
        max_prompt_tokens="256",
        max_tokens_limit="64",
        debug_endpoints="true",
        liveness_stall_s="1.5",
        memory_budget_bytes=str(3 << 29),
    )
    try:
        srv.wait_started()
        yield srv
    finally:
        srv.stop()
