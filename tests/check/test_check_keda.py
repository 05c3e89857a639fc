"""`gauntlet check` and `gauntlet model` read a KEDA ScaledObject as the HPA KEDA generates, plus
KEDA's own delays (activation polling, cached metrics); a bad ScaledObject names file and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from harness.check.evaluate import run_checks
from harness.check.findings import Finding
from harness.check.targets import targets_for
from harness.check.workload import workloads
from harness.cli.model import model
from harness.errors import InputError
from harness.manifests.bundle import ManifestBundle
from harness.manifests.render import render
from harness.manifests.validate import validate_bundle
from harness.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
Objs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def keda_objects() -> Objs:
    return render(ROOT / "manifests" / "keda").objects


def scaled_object(objs: Objs) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == "ScaledObject")


def run(objs: Objs, measured: dict[str, float] | None = None) -> list[Finding]:
    return run_checks(
        ManifestBundle(copy.deepcopy(objs), source="keda.yaml"),
        targets_for(load_profile("local"), measured),
    )


def test_the_keda_manifests_are_the_local_hpa_as_keda_generates_it(keda_objects: Objs) -> None:
    bundle = ManifestBundle(keda_objects)
    assert validate_bundle(bundle) == []  # our own model, not "no schema"
    (w,) = workloads(bundle)
    assert w.scaled_object is not None and w.hpa is not None
    assert w.hpa["metadata"]["name"] == "keda-hpa-gauntlet-inference"
    assert (w.steady_replicas, w.max_replicas) == (2, 4)
    local = render(ROOT / "manifests" / "overlays" / "local").hpa
    assert local is not None
    assert w.hpa["spec"]["behavior"] == local["spec"]["behavior"]
    assert [m["type"] for m in w.hpa["spec"]["metrics"]] == ["External", "Resource"]
    # no error findings: it checks like the local overlay it is made from
    errors = [f for f in run(keda_objects) if f.severity.value == "error"]
    assert errors == []


def test_scale_from_zero_is_slower_than_scale_out_s(keda_objects: Objs) -> None:
    """minReplicaCount 0 with KEDA's default 30 s poll: the first replica is asked for up to
    30 s after the spike, then cold-starts; past spike.scale_out_s that is a warning on the
    ScaledObject's pollingInterval. Before: a ScaledObject was not read at all (no finding,
    'hpa-missing' instead)."""
    objs = copy.deepcopy(keda_objects)
    spec = scaled_object(objs)["spec"]
    spec["minReplicaCount"] = 0
    del spec["pollingInterval"]
    limit = load_profile("local").spike.scale_out_s
    found = [f for f in run(objs, {"cold_start_p95_s": limit - 10}) if f.rule == "keda-activation"]
    assert len(found) == 1
    f = found[0]
    assert f.severity.value == "warning" and f.resource == "ScaledObject/gauntlet-inference"
    assert f.field == "spec.pollingInterval" and "pollingInterval 30 s" in f.measured
    assert "fail meanwhile" in f.message  # at 0 replicas nothing serves
    assert "lower pollingInterval to <= 10 s" in f.fix
    # the shipped 5 s poll from 2 replicas: no activation finding
    assert not [f for f in run(keda_objects) if f.rule.startswith("keda-")]
    # a fast poll keeps it within the target
    spec["pollingInterval"] = 5
    fast = run(objs, {"cold_start_p95_s": limit - 10})
    assert not [f for f in fast if f.rule == "keda-activation"]


def test_scale_to_zero_on_the_pods_own_metric_never_activates(keda_objects: Objs) -> None:
    """The shipped trigger reads vllm:num_requests_running from the replicas themselves: at 0
    replicas the query is empty, so nothing activates them again."""
    objs = copy.deepcopy(keda_objects)
    scaled_object(objs)["spec"]["minReplicaCount"] = 0
    found = [f for f in run(objs) if f.rule == "keda-activation-own-metric"]
    assert len(found) == 1 and found[0].field == "spec.triggers[0].metadata.query"
    assert "vllm:num_requests_running" in found[0].message
    # a second trigger on a metric from outside the pods can activate it
    scaled_object(objs)["spec"]["triggers"].append(
        {
            "type": "prometheus",
            "metadata": {
                "serverAddress": "http://prometheus:9090",
                "query": "sum(gateway_queue_depth)",
                "threshold": "5",
            },
        }
    )
    assert not [f for f in run(objs) if f.rule == "keda-activation-own-metric"]


def test_cached_metrics_delay(keda_objects: Objs) -> None:
    objs = copy.deepcopy(keda_objects)
    so = scaled_object(objs)
    so["spec"]["pollingInterval"] = 60
    so["spec"]["triggers"][0]["useCachedMetrics"] = True
    limit = load_profile("local").spike.scale_out_s
    found = [f for f in run(objs, {"cold_start_p95_s": limit - 30}) if f.rule.startswith("keda")]
    assert [f.rule for f in found] == ["keda-cached-metrics"]
    assert found[0].field == "spec.triggers[0].useCachedMetrics"


def test_hpa_findings_point_at_the_scaled_object(keda_objects: Objs) -> None:
    """maxReplicas too low for the spike: reported on ScaledObject spec.maxReplicaCount."""
    objs = copy.deepcopy(keda_objects)
    scaled_object(objs)["spec"]["maxReplicaCount"] = 2
    found = [
        f for f in run(objs, {"capacity_rps_per_replica": 20.0}) if f.rule == "hpa-max-replicas"
    ]
    assert found and found[0].resource == "ScaledObject/gauntlet-inference"
    assert found[0].field == "spec.maxReplicaCount"
    assert "keda-hpa-gauntlet-inference" in found[0].message


def test_bad_scaled_object_names_file_and_field(tmp_path: Path, keda_objects: Objs) -> None:
    objs = copy.deepcopy(keda_objects)
    scaled_object(objs)["spec"]["cooldownPeriod"] = -1
    path = tmp_path / "bundle.yaml"
    path.write_text(yaml.safe_dump_all(objs))
    bundle = render(path)
    with pytest.raises(InputError) as err:
        validate_bundle(bundle)
    assert err.value.file == str(path) and err.value.field == "spec.cooldownPeriod"
    with pytest.raises(InputError) as err:
        workloads(bundle)
    assert err.value.file == str(path) and err.value.field == "spec.cooldownPeriod"


def test_model_hpa_reads_a_scaled_object(tmp_path: Path, keda_objects: Objs) -> None:
    """`gauntlet model hpa` with a ScaledObject under `hpa`: one reconcile of the generated HPA
    on its External metric (KEDA's metrics server value: the query's total)."""
    so = scaled_object(keda_objects)
    inp: dict[str, Any] = {
        "hpa": so,
        "now": "2026-01-01T00:00:00Z",
        "specReplicas": 2,
        "pods": [],
        "customMetrics": {"external": {"s0-prometheus": [10]}},
    }
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump(inp))
    res = CliRunner().invoke(model, ["hpa", "--input", str(path), "--format", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)["decision"]
    # ceil(10 / averageValue 2) = 5, capped at maxReplicaCount 4
    assert d["desiredReplicas"] == 4
    ext = next(m for m in d["currentMetrics"] if m.get("type") == "External")
    assert ext["external"]["metric"]["name"] == "s0-prometheus"
    bad = copy.deepcopy(inp)
    bad["hpa"]["spec"]["pollingInterval"] = 0
    path.write_text(yaml.safe_dump(bad))
    res = CliRunner().invoke(model, ["hpa", "--input", str(path)])
    assert isinstance(res.exception, InputError)  # the CLI's main turns it into exit code 2
    assert res.exception.field == "hpa.spec.pollingInterval"
    assert res.exception.file == str(path)


def test_metric_findings_map_back_to_their_trigger(keda_objects: Objs) -> None:
    """The generated metrics are sorted by type (External before Resource): a finding on
    spec.metrics[1] of triggers [cpu, prometheus] is on spec.triggers[0]."""
    from harness.check.findings import Severity
    from harness.check.rules.keda import as_scaled_object

    objs = copy.deepcopy(keda_objects)
    trig = scaled_object(objs)["spec"]["triggers"]
    trig.reverse()  # [cpu, prometheus]
    (w,) = workloads(ManifestBundle(objs))
    assert w.hpa is not None
    assert [m["type"] for m in w.hpa["spec"]["metrics"]] == ["External", "Resource"]
    f = Finding(
        rule="x",
        severity=Severity.info,
        resource="HorizontalPodAutoscaler/keda-hpa-gauntlet-inference",
        field="spec.metrics[1].resource.target",
        message="m",
    )
    assert as_scaled_object(w, f).field == "spec.triggers[0].resource.target"
    assert as_scaled_object(w, f.model_copy(update={"field": "spec.metrics"})).field == (
        "spec.triggers"
    )
    assert as_scaled_object(w, f.model_copy(update={"field": "spec.minReplicas"})).field == (
        "spec.minReplicaCount"
    )
