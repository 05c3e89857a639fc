"""issue 18 item 2: the manifests `certify --backend kind` deploys run on kind nodes.

Every kind set (overlays/kind and each broken-kind/<variant>) is rendered with the project's
renderer (kustomize through `harness.run.options.load_manifests`) and validated with
kubernetes-validate: no hostPath volume (a kind node has no harness-host folders),
GAUNTLET_MODEL_DIR is where the Dockerfile bakes the model, images are never pulled, and each
broken-kind variant differs from the kind good set in exactly the fields its local twin differs
from overlays/local.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.backends import default_manifests
from harness.backends.kind_image import IMAGE_MODEL_DIR
from harness.manifests.bundle import ManifestBundle
from harness.manifests.validate import validate_bundle
from harness.run.options import load_manifests, resolve_inputs

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "manifests"
BROKEN = sorted(p.name for p in (MANIFESTS / "broken").iterdir() if p.is_dir())
KIND_SETS = [MANIFESTS / "overlays" / "kind"] + [MANIFESTS / "broken-kind" / v for v in BROKEN]


def _dockerfile_model_dir() -> str:
    """The model dir the image bakes: `build-model --out X` and the runtime's ENV agree on X."""
    text = (REPO / "reference_service" / "Dockerfile").read_text()
    built = re.findall(r"build-model\b.*--out\s+(\S+)", text)
    env = re.findall(r"GAUNTLET_MODEL_DIR=(\S+)", text)
    assert len(built) == 1 and env, "Dockerfile: expected one build-model --out and its ENV"
    assert set(env) == {built[0]}, f"Dockerfile bakes {built[0]} but sets {env}"
    return built[0]


def _render(path: Path) -> ManifestBundle:
    bundle = load_manifests(path)
    validate_bundle(bundle)  # raises InputError on the first invalid object
    return bundle


def _pod_specs(bundle: ManifestBundle) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in bundle.of_kind("Deployment")]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """path -> leaf value (lists of named items keyed by name, so a diff names fields)."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
        if not obj:
            out[prefix] = {}
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            key = v.get("name", i) if isinstance(v, dict) else i
            out.update(_flatten(v, f"{prefix}[{key}]"))
        if not obj:
            out[prefix] = []
    else:
        out[prefix] = obj
    return out


def _objects(bundle: ManifestBundle) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": _flatten(o) for o in bundle}


def _diff(a: ManifestBundle, b: ManifestBundle) -> dict[str, tuple[Any, Any]]:
    """object/field -> (value in a, value in b) for every field that differs."""
    oa, ob = _objects(a), _objects(b)
    assert oa.keys() == ob.keys(), f"objects differ: {sorted(oa.keys() ^ ob.keys())}"
    diff: dict[str, tuple[Any, Any]] = {}
    for name, fa in oa.items():
        fb = ob[name]
        for path in fa.keys() | fb.keys():
            if fa.get(path, "<absent>") != fb.get(path, "<absent>"):
                diff[name + path] = (fa.get(path, "<absent>"), fb.get(path, "<absent>"))
    return diff


def test_every_broken_variant_has_a_kind_version() -> None:
    kind_variants = sorted(p.name for p in (MANIFESTS / "broken-kind").iterdir() if p.is_dir())
    assert kind_variants == BROKEN


@pytest.mark.parametrize("path", KIND_SETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_kind_set_renders_validates_and_runs_on_a_kind_node(path: Path) -> None:
    model_dir = _dockerfile_model_dir()
    assert model_dir == IMAGE_MODEL_DIR
    bundle = _render(path)
    specs = _pod_specs(bundle)
    assert specs, f"{path}: no Deployment"
    for spec in specs:
        host_paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
        assert not host_paths, f"{path}: hostPath volumes {host_paths} (absent on kind nodes)"
        for c in spec["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            assert env.get("GAUNTLET_MODEL_DIR") == model_dir, (
                f"{path}: container {c['name']} GAUNTLET_MODEL_DIR="
                f"{env.get('GAUNTLET_MODEL_DIR')!r}, the image bakes the model into {model_dir}"
            )
            assert c.get("imagePullPolicy") in ("IfNotPresent", "Never"), (
                f"{path}: container {c['name']} imagePullPolicy {c.get('imagePullPolicy')!r}: "
                "kind nodes get the image from `kind load`, not a registry"
            )
            mounts = [m["mountPath"] for m in c.get("volumeMounts") or []]
            assert not any(m.startswith("/tmp/gauntlet") for m in mounts), mounts


@pytest.mark.parametrize("variant", BROKEN)
def test_broken_kind_variant_has_exactly_its_local_twins_flaw(variant: str) -> None:
    local_diff = _diff(
        _render(MANIFESTS / "overlays" / "local"), _render(MANIFESTS / "broken" / variant)
    )
    kind_diff = _diff(
        _render(MANIFESTS / "overlays" / "kind"), _render(MANIFESTS / "broken-kind" / variant)
    )
    assert local_diff, f"broken/{variant} does not differ from overlays/local"
    # the same fields, set to the same values (what they replace may differ: kind's startup
    # probe is longer than local's, and liveness-no-startup removes it)
    assert {k: v[1] for k, v in kind_diff.items()} == {k: v[1] for k, v in local_diff.items()}, (
        f"broken-kind/{variant} vs overlays/kind: {kind_diff}\n"
        f"broken/{variant} vs overlays/local: {local_diff}"
    )


def test_kind_backend_defaults_to_the_kind_overlay() -> None:
    assert default_manifests("kind") == (MANIFESTS / "overlays" / "kind").resolve()
    assert default_manifests("local").name == "local"
    inputs = resolve_inputs(
        "kind", "local", None, context=None, allow_contexts=[], runtime="process"
    )
    assert Path(inputs.manifests.source).resolve() == (MANIFESTS / "overlays" / "kind").resolve()
    (spec,) = _pod_specs(inputs.bundle)
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["GAUNTLET_MODEL_DIR"] == IMAGE_MODEL_DIR


def test_kind_overlay_changes_only_what_kind_needs() -> None:
    """local -> kind: the model (volume, mount, env, preset hint), the pull policy and the
    startup budget; everything else (the base's /tmp emptyDir, probes, sizes) as local has it."""
    diff = _diff(
        _render(MANIFESTS / "overlays" / "local"), _render(MANIFESTS / "overlays" / "kind")
    )
    pod = "Deployment/gauntlet-inference/spec/template"
    container = f"{pod}/spec/containers[inference]"
    allowed = (
        f"{pod}/metadata/annotations",
        f"{pod}/spec/volumes[model]",
        f"{container}/volumeMounts[model]",
        f"{container}/env[GAUNTLET_MODEL_DIR]",
        f"{container}/imagePullPolicy",
        f"{container}/startupProbe",
    )
    unexpected = sorted(k for k in diff if not k.startswith(allowed))
    assert not unexpected, {k: diff[k] for k in unexpected}
    assert any(k.startswith(f"{pod}/spec/volumes[model]") for k in diff)
    kind_pod = _pod_specs(_render(MANIFESTS / "overlays" / "kind"))[0]
    assert [v["name"] for v in kind_pod["volumes"]] == ["tmp"]


@pytest.mark.parametrize("variant", BROKEN)
def test_gauntlet_check_finds_the_same_flaw_in_the_kind_twin(variant: str) -> None:
    """`gauntlet check` (its rules, in-process) reports the same errors for broken-kind/<v>
    as for broken/<v>, and none for overlays/kind."""
    from harness.check.evaluate import run_checks
    from harness.check.targets import targets_for
    from harness.profile import load_profile

    targets = targets_for(load_profile("local"))

    def error_rules(path: Path) -> set[str]:
        return {f.rule for f in run_checks(_render(path), targets) if f.severity == "error"}

    assert not error_rules(MANIFESTS / "overlays" / "kind")
    assert error_rules(MANIFESTS / "broken-kind" / variant) == error_rules(
        MANIFESTS / "broken" / variant
    )
