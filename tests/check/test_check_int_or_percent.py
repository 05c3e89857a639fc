"""maxSurge / maxUnavailable / minAvailable are read with intstr.GetScaledValueFromIntOrPercent
(harness.models.intstr): a value the API server would reject is an input error naming the
resource, the file and the field, never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from harness.check.evaluate import run_checks
from harness.check.targets import targets_for
from harness.errors import InputError
from harness.manifests.bundle import ManifestBundle
from harness.manifests.render import render
from harness.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
Objs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def local_objects() -> Objs:
    return render(ROOT / "manifests" / "overlays" / "local").objects


def of(objs: Objs, kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind)


def check(objs: Objs) -> list[Any]:
    return run_checks(ManifestBundle(objs, source="test.yaml"), targets_for(load_profile("local")))


@pytest.mark.parametrize("value", ["1", "12.5%", "a%", "25 %"])
def test_bad_max_surge_is_an_input_error(local_objects: Objs, value: str) -> None:
    objs = copy.deepcopy(local_objects)
    dep = of(objs, "Deployment")
    dep["spec"]["replicas"] = 1
    objs = [o for o in objs if o["kind"] != "HorizontalPodAutoscaler"]
    dep["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": value}}
    with pytest.raises(InputError) as err:
        check(objs)
    assert err.value.field == "spec.strategy.rollingUpdate.maxSurge"
    assert err.value.message.startswith(
        "Deployment/gauntlet-inference: invalid value for IntOrString"
    )
    assert err.value.fix and "25%" in err.value.fix


def test_bad_pdb_min_available_names_the_pdb(local_objects: Objs) -> None:
    objs = copy.deepcopy(local_objects)
    pdb = of(objs, "PodDisruptionBudget")
    pdb["spec"].pop("maxUnavailable", None)
    pdb["spec"]["minAvailable"] = "50"
    with pytest.raises(InputError) as err:
        check(objs)
    assert err.value.field == "spec.minAvailable"
    assert err.value.message == (
        f"PodDisruptionBudget/{pdb['metadata']['name']}: invalid value for "
        "IntOrString: invalid type: string is not a percentage"
    )


@pytest.mark.parametrize(
    ("surge", "unavailable", "errors"),
    [
        (0, 1, False),
        ("0%", "50%", False),
        (1, 0, True),
        ("50%", "0%", True),
    ],
)
def test_gpu_rollout_fenceposts(
    local_objects: Objs, surge: Any, unavailable: Any, errors: bool
) -> None:
    objs = copy.deepcopy(local_objects)
    dep = of(objs, "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c.setdefault("resources", {}).setdefault("limits", {})["nvidia.com/gpu"] = 1
    dep["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }
    found = {f.rule for f in check(objs)}
    assert ("gpu-rollout-deadlock" in found) is errors
