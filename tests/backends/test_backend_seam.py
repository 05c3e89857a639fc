"""The backend seam: optional abilities as their own interfaces, typed observations, preflight."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from pydantic import ValidationError

import harness.backends as backends
from harness.backends.base import Backend, ClusterProvisioner, RolloutRestarter
from harness.backends.observe import (
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    Event,
    FaultKind,
    FaultRecord,
    Node,
    ObjectMeta,
    ObjectReference,
    Pod,
)
from harness.errors import SetupError


def stub_backend(*bases: type, **attrs: Any) -> type[Backend]:
    """A Backend whose every abstract method does nothing (plus `attrs`)."""
    names = set(Backend.__abstractmethods__).union(
        *(getattr(b, "__abstractmethods__", set()) for b in bases)
    )
    body: dict[str, Any] = {n: (lambda *a, **k: None) for n in names}
    body.update(attrs)
    return type("Stub", (Backend, *bases), body)


# abilities --------------------------------------------------------------------------------------
def test_the_base_backend_has_no_optional_ability() -> None:
    assert not hasattr(Backend, "rollout_restart") and not hasattr(Backend, "check_prerequisites")
    plain = stub_backend()
    assert not issubclass(plain, RolloutRestarter) and not issubclass(plain, ClusterProvisioner)


def test_abilities_are_claimed_not_guessed(tmp_path: Path) -> None:
    # a MagicMock has every attribute: a structural check would grant it every ability
    assert not isinstance(mock.MagicMock(), RolloutRestarter)
    can = stub_backend(RolloutRestarter)(tmp_path)
    assert isinstance(can, RolloutRestarter) and isinstance(can, Backend)
    with pytest.raises(TypeError, match="rollout_restart"):  # claiming it means implementing it
        type(
            "Half",
            (Backend, RolloutRestarter),
            {n: (lambda *a, **k: None) for n in Backend.__abstractmethods__},
        )(tmp_path)


def test_every_backend_declares_its_abilities() -> None:
    from harness.backends.kind import KindBackend
    from harness.backends.kube import KubeBackend

    assert issubclass(KubeBackend, RolloutRestarter) and not issubclass(
        KubeBackend, ClusterProvisioner
    )
    assert issubclass(KindBackend, RolloutRestarter) and issubclass(KindBackend, ClusterProvisioner)
    assert KubeBackend.limits_enforced and KubeBackend.limits_reason


def test_rollout_restart_action_needs_the_ability(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chaoslib.exceptions import ActivityFailed

    from harness.chaos import actions

    backend = stub_backend(name="plain")(tmp_path)
    monkeypatch.setattr(actions, "current", lambda: SimpleNamespace(backend=backend))
    with pytest.raises(ActivityFailed, match="the plain backend does not support rollout_restart"):
        actions.rollout_restart(timeout_s=1)


# preflight --------------------------------------------------------------------------------------
def test_preflight_builds_tears_down_and_reports_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torn: list[bool] = []
    cls = stub_backend(limits_enforced=True, teardown=lambda self: torn.append(True))
    monkeypatch.setattr(backends, "backend_class", lambda name: cls)
    work = tmp_path / "scratch"
    assert backends.preflight("x", cls, work) is True
    assert torn == [True] and not work.exists()


def test_preflight_wraps_a_failure_to_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(backends, "backend_class", lambda name: stub_backend())

    def broken(workdir: Path) -> Backend:
        raise OSError("no such runtime")

    with pytest.raises(SetupError, match="backend could not start: OSError: no such runtime"):
        backends.preflight("x", broken, tmp_path)


def test_preflight_checks_a_cluster_provisioner_without_building_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checked: list[bool] = []
    cls = stub_backend(
        ClusterProvisioner,
        limits_enforced=True,
        check_prerequisites=classmethod(lambda c: checked.append(True)),
    )
    monkeypatch.setattr(backends, "backend_class", lambda name: cls)

    def factory(workdir: Path) -> Backend:
        raise AssertionError("a cluster provisioner must not be built by preflight")

    assert backends.preflight("kind", factory, tmp_path) is True and checked == [True]


def test_backend_class_imports_without_building() -> None:
    from harness.backends.kube import KubeBackend

    assert backends.backend_class("kube") is KubeBackend


# typed observations -----------------------------------------------------------------------------
def test_observations_refuse_untyped_extras() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Pod(name="p", creationTimestamp=0.0, specReplicas=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="extra"):
        Event(
            reason="x",
            involvedObject=ObjectReference(kind="Pod", name="p"),
            firstTimestamp=0,
            lastTimestamp=0,
            uid="u",
        )  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="extra"):
        Node(name="n", zone="a")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="extra"):  # the old spellings of the drain fields
        FaultRecord(kind="drain", target="z", started_at=0.0, landed=False, blocked=["p"])  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="extra"):  # spec.replicas lives on Deployment.spec
        DeploymentStatus(replicas=1, specReplicas=1)  # type: ignore[call-arg]


def test_deployment_in_kubernetes_shape() -> None:
    dep = Deployment(metadata=ObjectMeta(name="d", namespace="ns", generation=2))
    assert dep.spec.replicas == 1  # the API server's default
    assert DeploymentSpec(replicas=3).replicas == 3
    assert dep.model_dump()["metadata"] == {"name": "d", "namespace": "ns", "generation": 2}


def test_fault_kinds_are_one_vocabulary() -> None:
    rec = FaultRecord(
        kind="drain",
        target="zone-a",
        started_at=0.0,
        landed=False,
        evictions_blocked=["p-1"],
        eviction_429s=3,
    )
    assert rec.kind is FaultKind.DRAIN and rec.kind == "drain"
    assert rec.model_dump(mode="json")["kind"] == "drain"
    assert {k.value for k in FaultKind} >= {
        "zone-outage",
        "restore",
        "drain",
        "kill-pod",
        "hang",
        "memory-pressure",
        "rollout-restart",
        "spike",
    }
    with pytest.raises(ValidationError):
        FaultRecord(kind="meteor", target="x", started_at=0.0, landed=True)
