"""The models speak Kubernetes: Go durations and controller flags in, metrics API lists in,
specReplicas from the HPA's status, RFC 3339 timestamps out."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from harness.cli.model import model
from harness.errors import InputError
from harness.models._k8s import ModelInputError, parse_duration, to_rfc3339
from harness.models.hpa import HPAController, controller_options, resource_pod_metrics
from harness.models.hpa.metrics_client import parse_custom_metrics

NOW = 1_796_116_427.0  # 2026-12-01T09:13:47Z


# --- Go durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m0s", 300.0),
        ("15s", 15.0),
        ("1h2m3.5s", 3723.5),
        ("300ms", 0.3),
        ("0", 0.0),
        ("2h45m", 9900.0),
        (".5s", 0.5),
        ("1.5s", 1.5),
        ("10us", 1e-5),
        ("10µs", 1e-5),
        ("100ns", 1e-7),
        ("+30s", 30.0),
        (300, 300.0),
        (1.5, 1.5),
    ],
)
def test_go_durations_and_plain_seconds(text, seconds):
    assert parse_duration(text, "f") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message", "fix"),
    [
        ("15", "missing unit", "write 15s"),
        ("5d", "unknown unit 'd'", "24h, not 1d"),
        ("1.5.5s", "not a Go duration", "5m0s"),
        ("5 m", "not a Go duration", "5m0s"),
        ("s", "not a Go duration", "5m0s"),
        ("", "empty duration", "5m0s"),
        ("-5s", "must be a duration >= 0", "5m0s"),
        (-1, "must be a duration >= 0", "5m0s"),
        (True, "not a duration", "5m0s"),
    ],
)
def test_bad_durations_name_the_field_and_the_fix(text, message, fix):
    with pytest.raises(ModelInputError) as e:
        parse_duration(text, "controller.syncPeriod")
    assert e.value.field == "controller.syncPeriod"
    assert e.value.fix is not None
    assert message in e.value.message and fix in e.value.fix


def test_pod_metrics_window_takes_go_durations():
    pm = [
        {
            "metadata": {"name": "p"},
            "timestamp": NOW,
            "window": "1m30s",
            "containers": [{"name": "c", "usage": {"cpu": "250m"}}],
        }
    ]
    assert resource_pod_metrics(pm, "cpu")["p"].window == 90.0


# --- controller settings as copied from a cluster ------------------------------------------------

DEFAULTS = {
    "tolerance": 0.1,
    "sync_period_s": 15.0,
    "downscale_stabilization_s": 300.0,
    "cpu_initialization_period_s": 300.0,
    "initial_readiness_delay_s": 30.0,
}


def test_controller_settings_accept_go_durations_flags_and_componentconfig():
    assert controller_options(None) == DEFAULTS
    got = controller_options(
        {
            "downscaleStabilization": "5m0s",
            "cpuInitializationPeriod": "2m",
            "initialReadinessDelay": 10,
            "syncPeriod": "30s",
            "tolerance": 0.05,
        }
    )
    assert got == {
        "tolerance": 0.05,
        "sync_period_s": 30.0,
        "downscale_stabilization_s": 300.0,
        "cpu_initialization_period_s": 120.0,
        "initial_readiness_delay_s": 10.0,
    }
    # the kube-controller-manager flag names, with or without dashes
    got = controller_options(
        {
            "--horizontal-pod-autoscaler-downscale-stabilization": "1m0s",
            "horizontal-pod-autoscaler-tolerance": "0.2",
        }
    )
    assert got["downscale_stabilization_s"] == 60.0 and got["tolerance"] == 0.2
    # the static pod's command line: other flags are ignored
    got = controller_options(
        [
            "kube-controller-manager",
            "--leader-elect=true",
            "--horizontal-pod-autoscaler-sync-period=10s",
            "--horizontal-pod-autoscaler-initial-readiness-delay=45s",
        ]
    )
    assert got["sync_period_s"] == 10.0 and got["initial_readiness_delay_s"] == 45.0
    # a KubeControllerManagerConfiguration: its HPAController block, the rest ignored
    got = controller_options(
        {
            "kind": "KubeControllerManagerConfiguration",
            "HPAController": {
                "HorizontalPodAutoscalerSyncPeriod": "15s",
                "HorizontalPodAutoscalerCPUInitializationPeriod": "5m0s",
                "ConcurrentHorizontalPodAutoscalerSyncs": 5,
            },
        }
    )
    assert got["cpu_initialization_period_s"] == 300.0


@pytest.mark.parametrize(
    ("cfg", "field", "message"),
    [
        (
            {"downscaleStabilization": "5 minutes"},
            "controller.downscaleStabilization",
            "not a Go duration",
        ),
        ({"syncPeriod": "15"}, "controller.syncPeriod", "missing unit"),
        ({"syncPeriod": "0s"}, "controller", "sync period must be > 0"),
        ({"tolerance": "ten percent"}, "controller.tolerance", "tolerance must be a number"),
        ({"tolerence": 0.1}, "controller.tolerence", "unknown controller setting"),
        (["--horizontal-pod-autoscaler-sync-period"], "controller[0]", "has no value"),
        (["--horizontal-pod-autoscaler-sync-period=1d"], "controller[0]", "unknown unit"),
    ],
)
def test_bad_controller_settings_name_the_field(cfg, field, message):
    with pytest.raises(ModelInputError) as e:
        controller_options(cfg)
    assert e.value.field == field and message in e.value.message


# --- RFC 3339 out --------------------------------------------------------------------------------


def test_rfc3339_as_metav1_time_marshals():
    assert to_rfc3339(NOW) == "2026-12-01T09:13:47Z"
    assert to_rfc3339(NOW + 0.999) == "2026-12-01T09:13:47Z"  # second precision, truncated
    assert to_rfc3339(-62135596800.0) == "0001-01-01T00:00:00Z"  # Go's zero time


CPU50 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}


def cpu_hpa(**spec):
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "spec": {"minReplicas": 1, "maxReplicas": 10, "metrics": [CPU50], **spec},
    }


def cpu_pods(n, usage_m, now=NOW):
    pods, metrics = [], []
    ready = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"}]
    for i in range(n):
        container = {"name": "c", "resources": {"requests": {"cpu": "1"}}}
        pods.append(
            {
                "metadata": {"name": f"p{i}"},
                "spec": {"containers": [container]},
                "status": {
                    "phase": "Running",
                    "startTime": "2026-01-01T00:00:00Z",
                    "conditions": ready,
                },
            }
        )
        metrics.append(
            {
                "metadata": {"name": f"p{i}"},
                "timestamp": now - 5,
                "window": "15s",
                "containers": [{"name": "c", "usage": {"cpu": f"{usage_m}m"}}],
            }
        )
    return pods, metrics


def transition_times(decision):
    return {c["type"]: c["lastTransitionTime"] for c in decision.conditions}


def test_hpa_conditions_and_last_scale_time_are_rfc3339():
    ctl = HPAController(cpu_hpa())
    pods, metrics = cpu_pods(2, 900)
    d = ctl.reconcile(NOW + 0.4, spec_replicas=2, pods=pods, pod_metrics=metrics)
    assert d.rescale
    assert set(transition_times(d).values()) == {"2026-12-01T09:13:47Z"}
    assert d.lastScaleTime == "2026-12-01T09:13:47Z"
    assert d.to_dict()["lastScaleTime"] == d.lastScaleTime
    # 15 s later nothing flips: the transition times stay
    pods, metrics = cpu_pods(4, 450)
    d = ctl.reconcile(NOW + 15, spec_replicas=4, pods=pods, pod_metrics=metrics)
    assert not d.rescale and set(transition_times(d).values()) == {"2026-12-01T09:13:47Z"}


def test_pasted_hpa_status_keeps_transition_times_until_a_condition_flips():
    def cond(type_, status, reason, ltt):
        return {"type": type_, "status": status, "reason": reason, "lastTransitionTime": ltt}

    status = {
        "currentReplicas": 2,
        "lastScaleTime": "2026-11-30T08:00:00Z",
        "conditions": [
            cond("AbleToScale", "True", "ReadyForNewScale", "2026-11-30T08:00:00Z"),
            cond("ScalingActive", "False", "FailedGetResourceMetric", "2026-11-30T08:05:00Z"),
            cond("ScalingLimited", "False", "DesiredWithinRange", "2026-11-30T07:00:00Z"),
        ],
    }
    ctl = HPAController({**cpu_hpa(), "status": status})
    pods, metrics = cpu_pods(2, 500)  # 50 % = target: no change
    d = ctl.reconcile(NOW, spec_replicas=2, pods=pods, pod_metrics=metrics)
    assert transition_times(d) == {
        "AbleToScale": "2026-11-30T08:00:00Z",  # still True
        "ScalingActive": "2026-12-01T09:13:47Z",  # False -> True
        "ScalingLimited": "2026-11-30T07:00:00Z",
    }  # still False
    assert d.lastScaleTime == "2026-11-30T08:00:00Z"  # no rescale: carried over


# --- custom metrics as the metrics APIs return them ----------------------------------------------


def metric_value_list(metric, values, version="v1beta2", kind="Pod", window=None):
    items = []
    for name, value in values.items():
        item = {
            "describedObject": {
                "kind": kind,
                "namespace": "serve",
                "name": name,
                "apiVersion": "/v1",
            },
            "timestamp": "2026-12-01T09:13:40Z",
            "value": value,
        }
        if version == "v1beta2":
            item["metric"] = {"name": metric, "selector": None}
        else:
            item["metricName"] = metric
        if window is not None:
            item["windowSeconds"] = window
        items.append(item)
    return {
        "kind": "MetricValueList",
        "apiVersion": f"custom.metrics.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


PODS_HPA = {
    "spec": {
        "minReplicas": 1,
        "maxReplicas": 20,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "http_requests"},
                    "target": {"type": "AverageValue", "averageValue": "1"},
                },
            }
        ],
    }
}


def running_pods(*names):
    return [{"metadata": {"name": n}, "status": {"phase": "Running"}} for n in names]


@pytest.mark.parametrize(
    "form", ["under the metric", "under pods", "top level", "a list of lists", "v1beta1"]
)
def test_pods_metric_from_a_metric_value_list(form):
    values = {"p0": "1500m", "p1": "2500m", "p2": "2"}
    lst = metric_value_list(
        "http_requests", values, version="v1beta1" if form == "v1beta1" else "v1beta2"
    )
    custom = {
        "under the metric": {"pods": {"http_requests": lst}},
        "under pods": {"pods": lst},
        "top level": lst,
        "a list of lists": [lst],
        "v1beta1": {"pods": {"http_requests": lst}},
    }[form]
    pods = running_pods(*values)
    d = HPAController(PODS_HPA).reconcile(
        NOW, spec_replicas=3, pods=pods, pod_metrics=[], custom_metrics=custom
    )
    # (1.5 + 2.5 + 2) / 3 = 2 per pod vs 1 -> 6, exactly as the short form gives
    short = {"pods": {"http_requests": {"p0": 1.5, "p1": 2.5, "p2": 2}}}
    s = HPAController(PODS_HPA).reconcile(
        NOW, spec_replicas=3, pods=pods, pod_metrics=[], custom_metrics=short
    )
    assert d.desiredReplicas == s.desiredReplicas == 6
    assert d.currentMetrics == s.currentMetrics


def test_metric_value_list_items_keep_timestamp_and_window():
    cm = parse_custom_metrics(metric_value_list("m", {"a": "1", "b": "2"}, window=30), NOW)
    assert cm.pods["m"]["a"].timestamp == NOW - 7 and cm.pods["m"]["a"].window == 30
    cm = parse_custom_metrics({"pods": {"m": metric_value_list("m", {"a": "1"})}}, NOW)
    assert cm.pods["m"]["a"].window == 60.0  # metricServerDefaultMetricWindow
    assert cm.pods["m"]["a"].value == 1000


def test_object_metric_from_a_metric_value_list_matches_the_described_object():
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"}
    hpa = {
        "spec": {
            "minReplicas": 1,
            "maxReplicas": 20,
            "metrics": [
                {
                    "type": "Object",
                    "object": {
                        "describedObject": ingress,
                        "metric": {"name": "rps"},
                        "target": {"type": "Value", "value": "10"},
                    },
                }
            ],
        }
    }
    lst = metric_value_list("rps", {"other": "500", "main": "45"}, kind="Ingress")
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    pods = [{"metadata": {"name": f"p{i}"}, "status": ready} for i in range(3)]
    d = HPAController(hpa).reconcile(
        NOW, spec_replicas=3, pods=pods, pod_metrics=[], custom_metrics={"object": {"rps": lst}}
    )
    assert d.proposals[0]["replicas"] == 14  # ceil(45 / 10 * 3 ready); the 2x cap then says 6
    assert d.currentMetrics[0]["object"]["current"] == {"value": "45"}


def test_external_metric_value_list():
    ext = {"metric": {"name": "depth"}, "target": {"type": "AverageValue", "averageValue": "30"}}
    hpa = {
        "spec": {
            "minReplicas": 1,
            "maxReplicas": 50,
            "metrics": [{"type": "External", "external": ext}],
        }
    }
    items = [
        {
            "metricName": "depth",
            "metricLabels": {"queue": q},
            "value": v,
            "timestamp": "2026-12-01T09:13:40Z",
        }
        for q, v in (("a", "200"), ("b", "100"))
    ]
    lst = {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    }
    for custom in ({"external": {"depth": lst}}, {"external": lst}, lst):
        d = HPAController(hpa).reconcile(
            NOW, spec_replicas=2, status_replicas=2, pods=[], pod_metrics=[], custom_metrics=custom
        )
        assert d.proposals[0]["replicas"] == 10  # (200 + 100) / 30


NO_VALUE = {
    "kind": "MetricValueList",
    "items": [{"describedObject": {"kind": "Pod", "name": "a"}, "metric": {"name": "qps"}}],
}


@pytest.mark.parametrize(
    ("custom", "field", "message"),
    [
        (
            {"pods": {"qps": metric_value_list("rps", {"a": "1"})}},
            "customMetrics.pods.qps.items[0].metric.name",
            "item is for metric 'rps'",
        ),
        (
            {"pods": metric_value_list("qps", {"a": "1"}, kind="Service")},
            "customMetrics.pods.items[0].describedObject.kind",
            "must describe Pods",
        ),
        ({"pods": {"qps": NO_VALUE}}, "customMetrics.pods.qps.items[0].value", "value is required"),
        (
            {"pods": {"qps": metric_value_list("qps", {"a": "lots"})}},
            "customMetrics.pods.qps.items[0].value",
            "not a Kubernetes quantity",
        ),
        ({"pod": {}}, "customMetrics.pod", "unknown key"),
    ],
)
def test_bad_metric_value_lists_name_the_field(custom, field, message):
    with pytest.raises(ModelInputError) as e:
        parse_custom_metrics(custom, NOW)
    assert e.value.field == field and message in e.value.message


# --- target fields as horizontal.go reads them ---------------------------------------------------


def test_resource_average_value_wins_over_the_target_type():
    """computeStatusForResourceMetricGeneric reads target.averageValue first, whatever the
    target type says."""
    hpa = cpu_hpa()
    hpa["spec"]["metrics"] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50, "averageValue": "200m"},
            },
        }
    ]
    pods, metrics = cpu_pods(2, 400)
    d = HPAController(hpa).reconcile(NOW, spec_replicas=2, pods=pods, pod_metrics=metrics)
    assert d.desiredReplicas == 4  # 400m / 200m, not 40 % / 50 %
    assert d.currentMetrics[0]["resource"]["current"] == {"averageValue": "400m"}
    assert d.reason == "cpu resource above target"


def test_object_target_type_mismatch_is_a_metric_error():
    """computeStatusForObjectMetric picks the field by target.type: type Value without a value
    is FailedGetObjectMetric."""
    hpa = {
        "spec": {
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Object",
                    "object": {
                        "describedObject": {"kind": "Ingress", "name": "main"},
                        "metric": {"name": "rps"},
                        "target": {"type": "Value", "averageValue": "10"},
                    },
                }
            ],
        }
    }
    d = HPAController(hpa).reconcile(
        NOW, spec_replicas=2, pods=[], pod_metrics=[], custom_metrics={"object": {"rps": 50}}
    )
    assert not d.rescale and d.error is not None
    assert "neither a value target nor an average value target" in d.error
    assert {c["type"]: c["reason"] for c in d.conditions}[
        "ScalingActive"
    ] == "FailedGetObjectMetric"


# --- the CLI -------------------------------------------------------------------------------------


def run_cli(tmp_path, data):
    f = tmp_path / "in.yaml"
    f.write_text(yaml.safe_dump(data))
    return CliRunner().invoke(model, ["hpa", "--input", str(f), "--format", "json"]), f


def test_cli_spec_replicas_defaults_to_the_hpa_status(tmp_path):
    pods, metrics = cpu_pods(3, 500)
    status = {"currentReplicas": 5, "desiredReplicas": 5}
    data = {
        "hpa": {**cpu_hpa(), "status": status},
        "pods": pods,
        "podMetrics": metrics,
        "now": "2026-12-01T09:13:47Z",
    }
    out = json.loads(run_cli(tmp_path, data)[0].output)
    assert out["decision"]["currentReplicas"] == 5
    assert out["specReplicasFrom"] == "hpa.status.currentReplicas"
    out = json.loads(run_cli(tmp_path, {**data, "specReplicas": 4})[0].output)
    assert out["decision"]["currentReplicas"] == 4 and out["specReplicasFrom"] == "specReplicas"
    out = json.loads(run_cli(tmp_path, {**data, "hpa": cpu_hpa()})[0].output)
    assert out["decision"]["currentReplicas"] == 3
    assert out["specReplicasFrom"] == "the number of pods"


def test_cli_go_durations_metric_value_list_and_rfc3339(tmp_path):
    data = {
        "hpa": PODS_HPA,
        "pods": running_pods("a", "b"),
        "customMetrics": metric_value_list("http_requests", {"a": "3", "b": "1"}),
        "controller": {
            "downscaleStabilization": "5m0s",
            "cpuInitializationPeriod": "5m0s",
            "initialReadinessDelay": "30s",
            "syncPeriod": "15s",
            "tolerance": 0.1,
        },
    }
    res, _ = run_cli(tmp_path, data)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)["decision"]
    assert out["desiredReplicas"] == 4  # average 2 vs 1
    # `now` defaults to the newest metric timestamp; conditions carry it as RFC 3339
    assert {c["lastTransitionTime"] for c in out["conditions"]} == {"2026-12-01T09:13:40Z"}
    assert out["lastScaleTime"] == "2026-12-01T09:13:40Z"


def test_cli_bad_duration_is_an_input_error_naming_file_field_and_fix(tmp_path):
    pods, metrics = cpu_pods(1, 500)
    res, f = run_cli(
        tmp_path,
        {
            "hpa": cpu_hpa(),
            "pods": pods,
            "podMetrics": metrics,
            "controller": {"downscaleStabilization": "5min"},
        },
    )
    assert isinstance(res.exception, InputError)
    text = res.exception.render()
    assert text.startswith(f"{f}: controller.downscaleStabilization: unknown unit 'min'")
    assert "fix: units are ns, us, ms, s, m, h" in text


def test_cli_simulation_sync_period_from_the_controller(tmp_path):
    sim = {
        "traffic": [{"t": 0, "rps": 10}],
        "capacityPerReplica": 10,
        "coldStartSeconds": 30,
        "durationSeconds": 300,
    }
    res, _ = run_cli(
        tmp_path, {"hpa": cpu_hpa(), "controller": {"syncPeriod": "30s"}, "simulate": sim}
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["simulation"]["syncs"] == 11  # 0, 30, ..., 300
