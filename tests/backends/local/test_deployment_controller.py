"""The Deployment controller over an in-memory cluster: ReplicaSet sizes, rollout steps, status."""

from __future__ import annotations

import copy
import time

from cluster_fakes import HASH, add_pod, cluster

from harness.backends.local.controllers.deployment_controller import DeploymentController
from harness.backends.local.podspec.pod_template import parse_template


def test_sync_creates_the_replicaset_sized_to_spec_replicas() -> None:
    s = cluster(3)
    DeploymentController(s).sync(time.time())
    rs = s.replicasets[HASH]
    assert (rs.replicas, rs.desired, rs.max_replicas) == (3, 3, 4)  # 25% surge of 3 rounds up to 1
    assert s.deployment.conditions["Progressing"].reason == "NewReplicaSetCreated"
    assert "Scaled up replica set standin-h1 to 3" in [e.message for e in s.events.list()]


def test_a_new_template_surges_first_and_keeps_every_old_pod() -> None:
    s = cluster(2)  # default strategy at 2 replicas: maxSurge 1, maxUnavailable 0
    ctl = DeploymentController(s)
    ctl.sync(time.time())
    for i in range(2):
        add_pod(s, f"old-{i}", ready=True)
    changed = copy.deepcopy(s.deployment.manifest)
    changed["spec"]["template"]["metadata"]["annotations"] = {"restarted": "now"}
    new = ctl.apply(changed, parse_template(changed))
    assert new != HASH and ctl.template_hash(changed) == new
    ctl.sync(time.time())
    assert s.replicasets[new].replicas == 1 and s.replicasets[HASH].replicas == 2


def test_scale_is_applied_to_the_current_replicaset() -> None:
    s = cluster(2)
    ctl = DeploymentController(s)
    ctl.sync(time.time())
    s.deployment.spec_replicas = 5
    ctl.sync(time.time())
    assert s.replicasets[HASH].replicas == 5 and s.replicasets[HASH].desired == 5


def test_observed_deployment_counts_non_terminating_pods() -> None:
    s = cluster(3)
    ctl = DeploymentController(s)
    ctl.sync(time.time())
    add_pod(s, "a", ready=True)
    add_pod(s, "b")
    add_pod(s, "c", ready=True).deletion = time.time()  # terminating: no longer counted
    dep = ctl.observed()
    assert dep.metadata.name == "standin" and dep.spec.replicas == 3
    st = dep.status
    assert (
        st.replicas,
        st.readyReplicas,
        st.availableReplicas,
        st.updatedReplicas,
        st.unavailableReplicas,
    ) == (2, 1, 1, 2, 2)
    ctl.sync_status(time.time())
    cond = ctl.observed().status.condition("Available")
    assert cond is not None and cond.reason == "MinimumReplicasUnavailable"  # 1 available < 3 - 0
