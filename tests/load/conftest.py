from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("loopback_server.py")


@pytest.fixture
def loopback_server() -> Iterator[Callable[..., str]]:
    """Start a loopback test server with the given flags; returns its base URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> str:
        p = subprocess.Popen(
            [sys.executable, str(SERVER), *flags], stdout=subprocess.PIPE, text=True
        )
        procs.append(p)
        assert p.stdout is not None
        port = int(p.stdout.readline())
        return f"http://127.0.0.1:{port}"

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
