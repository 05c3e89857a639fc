"""`zone-pinned`: node selection that allows one zone only puts every replica in it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from harness.check.evaluate import run_checks
from harness.check.targets import targets_for
from harness.manifests.bundle import ManifestBundle
from harness.manifests.render import render
from harness.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
ZONE = "topology.kubernetes.io/zone"


def pinned(pod_spec_edit: dict[str, Any]) -> list[Any]:
    objs = copy.deepcopy(render(ROOT / "manifests" / "overlays" / "local").objects)
    dep = next(o for o in objs if o["kind"] == "Deployment")
    dep["spec"]["template"]["spec"].update(pod_spec_edit)
    findings = run_checks(ManifestBundle(objs, source="t.yaml"), targets_for(load_profile("local")))
    return [f for f in findings if f.rule == "zone-pinned"]


def _affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
                }
            }
        }
    }


def test_a_zone_node_selector_is_an_error_naming_the_zone() -> None:
    [f] = pinned({"nodeSelector": {ZONE: "zone-a"}})
    assert f.field == "spec.template.spec.nodeSelector" and "zone zone-a" in f.message


@pytest.mark.parametrize(
    ("spec", "found"),
    [
        (_affinity([{"key": ZONE, "operator": "In", "values": ["zone-b"]}]), True),
        # two zones allowed, or a second term without a zone restriction: not pinned
        (_affinity([{"key": ZONE, "operator": "In", "values": ["zone-a", "zone-b"]}]), False),
        (
            _affinity(
                [{"key": ZONE, "operator": "In", "values": ["zone-a"]}],
                [{"key": "pool", "operator": "In", "values": ["gpu"]}],
            ),
            False,
        ),
        ({}, False),
    ],
)
def test_required_node_affinity(spec: dict[str, Any], found: bool) -> None:
    assert bool(pinned(spec)) is found
