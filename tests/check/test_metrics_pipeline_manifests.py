"""manifests/kind/metrics-pipeline serves the HPA's Pods metrics: it renders and validates, its
Prometheus scrapes the pods the HPA scales (their label, their `http` port's /metrics) with the
labels the adapter maps to resources, and the adapter's rule exposes each Pods metric name of
the shipped HPAs unchanged (prometheus-adapter pkg/naming: `name.as` expands against
`name.matches`, "$0" the whole series name)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.manifests.render import render
from harness.manifests.validate import validate_bundle

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "manifests" / "kind" / "metrics-pipeline"
# the HPA's metric name validation: IsValidPathSegmentName (pkg/api/validation/path)
BAD_SEGMENT = re.compile(r"[/%]|^\.\.?$")


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    bundle = render(PIPELINE)
    assert validate_bundle(bundle) == []
    return bundle.objects


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def exposed(rule: dict[str, Any], series: str) -> str | None:
    """The custom-metrics name the adapter gives `series` (None: the rule does not take it)."""
    selector = re.search(r'__name__=~"([^"]+)"', rule["seriesQuery"])
    if selector is None or not re.fullmatch(selector.group(1).strip("^$"), series):
        return None
    matches = rule.get("name", {}).get("matches") or ".*"
    m = re.search(matches, series)
    if m is None:
        return None
    as_ = rule.get("name", {}).get("as") or ("$1" if re.compile(matches).groups else "$0")
    return re.sub(r"\$(\d+)", lambda g: m.group(int(g.group(1))) or "", as_)


def pods_metrics(path: Path) -> set[str]:
    hpa = render(path).hpa
    assert hpa is not None
    return {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m.get("type") == "Pods"}


@pytest.mark.parametrize("overlay", ["base", "overlays/local", "overlays/kind", "vllm/base"])
def test_adapter_exposes_every_pods_metric_of_the_shipped_hpas(
    objects: list[dict[str, Any]], overlay: str
) -> None:
    config = yaml.safe_load(_one(objects, "ConfigMap", "adapter-config")["data"]["config.yaml"])
    wanted = pods_metrics(ROOT / "manifests" / overlay)
    assert wanted
    for name in wanted:
        assert not BAD_SEGMENT.search(name), name  # a colon is a valid HPA metric name
        got = {exposed(r, name) for r in config["rules"]} - {None}
        assert got == {name}, (name, got)
        rule = next(r for r in config["rules"] if exposed(r, name))
        assert rule["resources"]["overrides"] == {
            "namespace": {"resource": "namespace"},
            "pod": {"resource": "pod"},
        }


def test_prometheus_scrapes_the_hpa_target_pods(objects: list[dict[str, Any]]) -> None:
    prom = yaml.safe_load(_one(objects, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    (job,) = prom["scrape_configs"]
    relabel = job["relabel_configs"]
    keeps = {r["source_labels"][0]: r["regex"] for r in relabel if r.get("action") == "keep"}
    dep = render(ROOT / "manifests" / "overlays" / "kind").deployment
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert (
        keeps["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
        == (labels["app.kubernetes.io/name"])
    )
    ports = {p["name"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert keeps["__meta_kubernetes_pod_container_port_name"] in ports
    assert {r.get("target_label") for r in relabel} >= {"namespace", "pod"}


def test_pipeline_serves_custom_metrics_only(objects: list[dict[str, Any]]) -> None:
    apis = [o for o in objects if o["kind"] == "APIService"]
    assert [a["metadata"]["name"] for a in apis] == ["v1beta1.custom.metrics.k8s.io"]
    svc = apis[0]["spec"]["service"]
    assert _one(objects, "Service", svc["name"])["metadata"]["namespace"] == svc["namespace"]
    images = [
        c["image"]
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert all(re.search(r":v\d+\.\d+\.\d+$", i) for i in images), images  # pinned
    adapter = _one(objects, "Deployment", "prometheus-adapter")["spec"]["template"]["spec"]
    url = next(a for a in adapter["containers"][0]["args"] if a.startswith("--prometheus-url="))
    assert "prometheus.gauntlet-monitoring.svc:9090" in url
    rb = _one(objects, "RoleBinding", "gauntlet-prometheus-adapter-auth-reader")
    assert rb["metadata"]["namespace"] == "kube-system"
