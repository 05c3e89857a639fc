"""Fixtures: a mock Kubernetes API server on loopback, nodes in three zones, fake controllers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kube_controllers import FakeControllers, make_nodes
from kube_mock import MockServer
from kube_objects import CTX, MakeBackend, api_client

from harness.backends.kube import KubeBackend


@pytest.fixture()
def server() -> Iterator[MockServer]:
    srv = MockServer()
    make_nodes(srv)
    yield srv
    srv.close()


@pytest.fixture()
def controllers(server: MockServer) -> Iterator[FakeControllers]:
    ctl = FakeControllers(server)
    yield ctl
    ctl.stop()
    assert not ctl.errors, ctl.errors


@pytest.fixture()
def make_backend(server: MockServer, tmp_path: Path) -> Iterator[MakeBackend]:
    made: list[KubeBackend] = []

    def make(**kw: Any) -> KubeBackend:
        opts: dict[str, Any] = {
            "context": CTX,
            "allowed_contexts": [CTX],
            "chaos_allowed": True,
            "api_client": api_client(server),
            "poll_s": 0.05,
            "metrics_poll_s": 0.05,
            "eviction_retry_s": 0.05,
            "outage_wait_s": 10.0,
            "rollout_timeout_s": 30.0,
        }
        opts.update(kw)
        b = KubeBackend(tmp_path / f"work{len(made)}", **opts)
        made.append(b)
        return b

    yield make
    for b in made:
        b.teardown()
