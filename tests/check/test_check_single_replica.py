"""`single-replica`: one replica (spec.replicas, or the HPA floor) cannot meet an availability
target; what rollouts and PDBs do and do not cover for it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.check.evaluate import run_checks
from harness.check.findings import Finding, Severity
from harness.check.targets import targets_for
from harness.manifests.bundle import ManifestBundle
from harness.manifests.render import render
from harness.profile import Profile, load_profile

ROOT = Path(__file__).resolve().parents[2]
Objs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def local_objects() -> Objs:
    return render(ROOT / "manifests" / "overlays" / "local").objects


def of(objs: Objs, kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind)


def without(objs: Objs, *kinds: str) -> Objs:
    return [o for o in objs if o["kind"] not in kinds]


def single(objs: Objs, profile: Profile | None = None) -> list[Finding]:
    bundle = ManifestBundle(copy.deepcopy(objs), source="test.yaml")
    targets = targets_for(profile or load_profile("local"))
    return [f for f in run_checks(bundle, targets) if f.rule == "single-replica"]


def one_replica(local_objects: Objs, edit: Callable[[Objs], None] | None = None) -> Objs:
    objs = copy.deepcopy(without(local_objects, "HorizontalPodAutoscaler"))
    of(objs, "Deployment")["spec"]["replicas"] = 1
    if edit:
        edit(objs)
    return objs


def test_one_replica_without_pdb_is_an_error_with_the_budget(local_objects: Objs) -> None:
    objs = one_replica(local_objects, lambda o: o.remove(of(o, "PodDisruptionBudget")))
    [f] = single(objs)
    assert f.severity is Severity.error
    assert (f.resource, f.field) == ("Deployment/gauntlet-inference", "spec.replicas")
    # local profile: 99.95 % -> 21.6 min per 30 days; 300 s toleration + 8 s declared cold start
    assert "99.95 %" in f.message and "21.6 min" in f.message and "5.1 min" in f.message
    assert "every node drain, node failure and zone loss" in f.message
    assert "No PodDisruptionBudget" in f.message and "no PodDisruptionBudget" in f.measured
    assert "spec.replicas 1" in f.measured and "21.6 min" in f.required
    assert "at least 2 replicas spread over zones" in f.fix and "maxUnavailable: 1" in f.fix
    assert "slo.availability" in f.basis and "cold_start.declared_p95_s" in f.basis


def test_one_replica_min_available_pdb_blocks_the_drain(local_objects: Objs) -> None:
    def pdb_min_available(objs: Objs) -> None:
        spec = of(objs, "PodDisruptionBudget")["spec"]
        spec.pop("maxUnavailable")
        spec["minAvailable"] = 1

    [f] = single(one_replica(local_objects, pdb_min_available))
    assert "minAvailable 1 -> disruptionsAllowed 0" in f.measured
    assert "blocks voluntary evictions forever" in f.message and "drain hangs" in f.message
    assert "cluster-autoscaler cannot scale the node down" in f.message
    assert "does nothing against involuntary disruption" in f.message
    assert "OOM kill" in f.message and "zone loss" in f.message


def test_one_replica_max_unavailable_pdb_permits_the_outage(local_objects: Objs) -> None:
    [f] = single(one_replica(local_objects))  # the base PDB: maxUnavailable 1
    assert "maxUnavailable 1 -> disruptionsAllowed 1" in f.measured
    assert "permits the outage on every drain" in f.message


def test_two_replicas_have_no_single_replica_finding(local_objects: Objs) -> None:
    objs = one_replica(local_objects)
    of(objs, "Deployment")["spec"]["replicas"] = 2
    assert single(objs) == []
    assert single(local_objects) == []  # HPA minReplicas 2


def test_hpa_floor_of_one_is_reported_on_the_hpa(local_objects: Objs) -> None:
    objs = copy.deepcopy(local_objects)
    assert of(objs, "Deployment")["spec"]["replicas"] == 2
    of(objs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] = 1
    [f] = single(objs)
    assert (f.resource, f.field) == (
        "HorizontalPodAutoscaler/gauntlet-inference",
        "spec.minReplicas",
    )
    assert "HPA minReplicas 1" in f.measured and "spec.replicas 2" in f.measured
    assert "minReplicas" in f.fix
    # No minReplicas at all: the API default is 1.
    of(objs, "HorizontalPodAutoscaler")["spec"].pop("minReplicas")
    assert [g.field for g in single(objs)] == ["spec.minReplicas"]


def test_hpa_floor_above_one_overrides_spec_replicas_one(local_objects: Objs) -> None:
    objs = copy.deepcopy(local_objects)
    of(objs, "Deployment")["spec"]["replicas"] = 1
    of(objs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] = 2
    assert single(objs) == []


def test_scaled_to_zero_is_not_reported(local_objects: Objs) -> None:
    objs = one_replica(local_objects)
    of(objs, "Deployment")["spec"]["replicas"] = 0
    assert single(objs) == []


@pytest.mark.parametrize(
    ("strategy", "covered"),
    [
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, True),
        (
            {"type": "RollingUpdate"},
            True,
        ),  # defaults 25 % / 25 % at 1 replica: surge 1, unavailable 0
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, False),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}, False),
        ({"type": "Recreate"}, False),
    ],
)
def test_rollouts_covered_only_by_surge_without_unavailable(
    local_objects: Objs, strategy: dict[str, Any], covered: bool
) -> None:
    objs = one_replica(local_objects)
    of(objs, "Deployment")["spec"]["strategy"] = strategy
    [f] = single(objs)
    if covered:
        assert "keeps the old pod serving until the new one is Ready" in f.message
        assert "rollouts of a template change" in f.message and "are covered" in f.message
        assert "drains, evictions, node and zone failures and container restarts" in f.message
        assert "and every rollout" not in f.message
    else:
        assert "every rollout is an outage" in f.message
        assert "and every rollout" in f.message


def test_surge_without_readiness_does_not_cover_rollouts(local_objects: Objs) -> None:
    objs = one_replica(local_objects)
    of(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    [f] = single(objs)
    assert "without a readiness probe" in f.message and "and every rollout" in f.message


def test_budget_follows_the_profile_target_and_tolerations(local_objects: Objs) -> None:
    prof = load_profile("local")
    loose = prof.model_copy(update={"slo": prof.slo.model_copy(update={"availability": 0.99})})
    objs = one_replica(local_objects)
    of(objs, "Deployment")["spec"]["template"]["spec"]["tolerations"] = [
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        }
    ]
    [f] = single(objs, loose)
    # 1 % of 30 days = 432 min; still an error: nothing bounds the number of disruptions.
    assert f.severity is Severity.error and "432.0 min" in f.message and "99 %" in f.message
    assert "1.1 min (60 s unreachable toleration + 8 s cold start p95)" in f.message
