"""Rendering and offline validation of manifests (kustomize via the venv's kubectl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.manifests.render import kubectl_path, render
from harness.manifests.validate import validate_bundle

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ["local", "kind", "gpu", "istio"]
BROKEN = sorted(p.name for p in (MANIFESTS / "broken").iterdir() if p.is_dir())


def test_kubectl_is_the_venv_one() -> None:
    assert not kubectl_path().startswith("/usr/bin/")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_and_validate(overlay: str) -> None:
    bundle = render(MANIFESTS / "overlays" / overlay)
    kinds = {o["kind"] for o in bundle}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    skipped = validate_bundle(bundle)
    assert {s.resource.split("/")[0] for s in skipped} <= {"VirtualService", "DestinationRule"}
    dep = bundle.deployment
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["name"] == "inference" and c["command"] == ["gauntlet", "serve"]
    env = {e["name"]: e for e in c["env"]}
    assert env["GAUNTLET_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["GAUNTLET_PORT"]["value"] == "8000" and "GAUNTLET_MODEL_DIR" in env
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(c)


def test_overlay_shapes() -> None:
    gpu = render(MANIFESTS / "overlays" / "gpu").deployment
    res = gpu["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == 1
    assert (res["requests"]["memory"], res["limits"]["memory"]) == ("12Gi", "16Gi")
    assert gpu["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    kind = render(MANIFESTS / "overlays" / "kind").deployment
    kc = kind["spec"]["template"]["spec"]["containers"][0]
    assert kc["image"] == "gauntlet-inference:dev" and kc["imagePullPolicy"] == "IfNotPresent"
    istio = render(MANIFESTS / "overlays" / "istio")
    vs = istio.one("VirtualService")
    assert vs is not None
    weights = [d["weight"] for d in vs["spec"]["http"][1]["route"]]
    assert sum(weights) == 100
    dr = istio.one("DestinationRule")
    assert dr is not None
    assert dr["spec"]["trafficPolicy"]["outlierDetection"]


@pytest.mark.parametrize("variant", BROKEN)
def test_broken_variants_render(variant: str) -> None:
    bundle = render(MANIFESTS / "broken" / variant)
    validate_bundle(bundle)
    assert bundle.deployment["metadata"]["name"] == "gauntlet-inference"


def test_expected_broken_variants_exist() -> None:
    assert set(BROKEN) >= {
        "memory-limit-too-low",
        "liveness-no-startup",
        "no-readiness",
        "maxreplicas-too-low",
        "no-zone-spread",
        "pdb-blocks-drain",
        "grace-shorter-than-drain",
        "spread-honor-missing",
    }


def test_plain_yaml_file_and_folder(tmp_path: Path) -> None:
    text = render(MANIFESTS / "overlays" / "local").to_yaml()
    (tmp_path / "all.yaml").write_text(text)
    assert len(render(tmp_path / "all.yaml").objects) == 4
    assert len(render(tmp_path).objects) == 4
    both = render([tmp_path / "all.yaml", ROOT / "docs/examples/article-deployment.yaml"])
    assert len(both.objects) == 6 and both.origins[5].endswith("article-deployment.yaml")


@pytest.mark.parametrize(
    ("old", "new", "field", "what"),
    [
        ("livenessProbe:", "livenesProbe:", "containers[0].livenesProbe", "unknown field"),
        ("periodSeconds: 3", "periodSeconds: three", "livenessProbe.periodSeconds", "integer"),
        ("maxReplicas: 3", "maxReplicas: nine", "spec.maxReplicas", "integer"),
    ],
)
def test_schema_errors_name_file_resource_field(
    tmp_path: Path, old: str, new: str, field: str, what: str
) -> None:
    text = render(MANIFESTS / "overlays" / "local").to_yaml()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError) as exc:
        validate_bundle(render(bad))
    msg = str(exc.value)
    assert str(bad) in msg and field in msg and what in msg
    assert "gauntlet-inference" in msg


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    with pytest.raises(InputError) as exc:
        render(bad)
    assert f"{bad}:" in str(exc.value) and "YAML" in str(exc.value)


def test_not_an_object_and_missing_kind(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="not a Kubernetes object"):
        render(f)
    f.write_text("apiVersion: v1\nmetadata: {name: a}\n")
    with pytest.raises(InputError, match="kind"):
        render(f)


def test_kustomize_failure_is_input_error(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(InputError, match="kustomize failed") as exc:
        render(tmp_path)
    assert str(tmp_path) in str(exc.value)
