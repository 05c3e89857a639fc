"""Evictions through a PodDisruptionBudget: 200 above the budget, 429 at it."""

from __future__ import annotations

from typing import Any

import pytest
from cluster_fakes import Deletions, add_pod, cluster

from harness.backends.local.controllers.disruption_controller import (
    DisruptionController,
    check_budget,
)
from harness.errors import InputError


def pdb(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "standin"},
        "spec": {"selector": {"matchLabels": {"app": "standin"}}, **spec},
    }


def test_eviction_is_allowed_above_the_budget_and_refused_at_it() -> None:
    s = cluster(3, pdb({"minAvailable": 2}))
    for i in range(3):
        add_pod(s, f"p{i}", ready=True)
    deletions = Deletions(s)
    ctl = DisruptionController(s, deletions)
    assert ctl.evict("p0") == 200  # 3 healthy, 2 required
    assert ctl.evict("p1") == 429  # 2 healthy left
    assert deletions.calls == [("p0", None)]
    assert [e.reason for e in s.events.list()] == ["Evicted", "EvictionBlocked"]


def test_a_percentage_rounds_up_and_an_unready_pod_may_go_while_the_budget_holds() -> None:
    s = cluster(4, pdb({"maxUnavailable": "25%"}))  # 4 - ceil(1) = 3 must stay healthy
    for i in range(3):
        add_pod(s, f"p{i}", ready=True)
    add_pod(s, "unready")
    ctl = DisruptionController(s, Deletions(s))
    assert ctl.evict("unready") == 200
    assert ctl.evict("p0") == 429


def test_without_a_budget_or_a_pod_eviction_succeeds() -> None:
    s = cluster(1)
    add_pod(s, "p", ready=True)
    deletions = Deletions(s)
    ctl = DisruptionController(s, deletions)
    assert ctl.evict("p") == 200 and ctl.evict("p") == 200 and ctl.evict("nope") == 200
    assert deletions.calls == [("p", None)]  # already terminating: not deleted twice


def test_a_budget_the_api_server_would_refuse_is_refused_at_deploy() -> None:
    check_budget(None)
    check_budget(pdb({"minAvailable": "50%"}))
    with pytest.raises(InputError) as err:
        check_budget(pdb({"minAvailable": "3"}), "pdb.yaml")
    assert "spec.minAvailable" in str(err.value) and "pdb.yaml" in str(err.value)
