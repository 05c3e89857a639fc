"""KubeBackend.rollout_restart against the mock API server: the patch it sends, and the waiting."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import pytest
from kube_controllers import HASH, FakeControllers
from kube_mock import MockServer
from kube_objects import MakeBackend, bundle

from harness.backends.base import RESTARTED_AT
from harness.backends.kube import ChaosNotAllowedError


def deployment_patches(server: Any) -> list[Any]:
    return [
        r
        for r in server.api
        if r.method == "PATCH" and r.url.path.endswith("/deployments/gauntlet-inference")
    ]


def test_rollout_restart_patches_the_template_and_waits_for_the_rollout(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=3))
    b.wait_ready(timeout_s=20)
    before = {p.name for p in b.pods()}
    (old_hash,) = {p.labels[HASH] for p in b.pods()}
    observed: list[dict[str, Any]] = []  # Deployment status as the API served it while we waited
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            dep = server.api.get("Deployment", b.namespace, "gauntlet-inference")
            if dep is not None:
                observed.append(dep.get("status") or {})

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        rec = b.rollout_restart(timeout_s=20)
    finally:
        stop.set()
        t.join(5)

    assert rec.landed and rec.kind == "rollout-restart" and rec.target == "gauntlet-inference", (
        rec.detail
    )
    (patch,) = deployment_patches(server)
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    body = json.loads(patch.body)
    stamp = body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert body == {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()  # RFC3339
    assert rec.started_at - 1 <= when <= (rec.ended_at or 0)
    dep = server.api.get("Deployment", b.namespace, "gauntlet-inference")
    assert dep is not None
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == stamp
    assert dep["spec"]["template"]["metadata"][
        "labels"
    ]  # merge patch: the rest of the template is kept

    # it waited: the rollout had to go through intermediate states, and it returned on the final one
    assert any(
        st.get("updatedReplicas", 0) < 3 for st in observed if st.get("observedGeneration") == 2
    )
    pods = b.pods()
    assert not before & {p.name for p in pods}
    assert (
        len(pods) == 3
        and all(p.ready for p in pods)
        and {p.labels[HASH] for p in pods} != {old_hash}
    )
    st = b.deployment_status()
    assert (st.replicas, st.updatedReplicas, st.availableReplicas) == (3, 3, 3)
    assert (
        "max surge 1, max unavailable 0" in rec.detail
    )  # the fake controllers surge one pod at a time
    assert sorted(rec.affected) == sorted(before)


def test_rollout_restart_timeout_is_reported_not_raised(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend()
    b.deploy(bundle(replicas=2))
    b.wait_ready(timeout_s=20)
    controllers.ready_after_ticks = 10**9  # new pods never become Ready
    rec = b.rollout_restart(timeout_s=1.0)
    assert not rec.landed and rec.kind == "rollout-restart"
    assert "not complete after 1s" in rec.detail
    assert rec.ended_at is not None and rec.ended_at - rec.started_at >= 1.0
    assert len(deployment_patches(server)) == 1


def test_rollout_restart_refused_without_chaos(
    make_backend: MakeBackend, server: MockServer, controllers: FakeControllers
) -> None:
    controllers.start()
    b = make_backend(chaos_allowed=False)
    b.deploy(bundle(replicas=1))
    b.wait_ready(timeout_s=20)
    with pytest.raises(ChaosNotAllowedError, match=r"rollout_restart.*kube\.chaos_allowed"):
        b.rollout_restart(timeout_s=5)
    assert deployment_patches(server) == []
