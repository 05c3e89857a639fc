"""Upstream replica_calculator_test.go cases, ported with their exact expected numbers.

Test-only constants as upstream: tolerance 0.1, cpuInitializationPeriod 2 min, initial readiness
delay 10 s. Each test pod has 2 containers with the same request and the same usage level (upstream
numContainersPerPod = 2), metric window 1 min, metric timestamp = Go zero time, pod startTime =
zero time unless "hot" (now) or "cool" (now - 3 min), Ready lastTransitionTime unset (zero time).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from harness.models.hpa.metrics_client import PodMetric
from harness.models.hpa.replica_calculator import MetricError, ReplicaCalculator, Tolerances

NOW = 1_700_000_000.0
ZERO = -62135596800.0  # Go's zero time.Time
HOT = NOW
COOL = NOW - 180
TOL = Tolerances(0.1, 0.1)
CALC = ReplicaCalculator(cpu_initialization_period_s=120, initial_readiness_delay_s=10)


def make_pods(
    n, requests=None, readiness=None, phases=None, start=None, deleted=None, resource="cpu"
):
    pods = []
    for i in range(n):
        containers = [{"name": f"container{j}", "resources": {}} for j in range(2)]
        if requests is not None and i < len(requests):
            for c in containers:
                c["resources"] = {"requests": {resource: requests[i]}}
        pod: dict[str, Any] = {
            "metadata": {"name": f"test-pod-{i}"},
            "spec": {"containers": containers},
            "status": {
                "phase": phases[i] if phases else "Running",
                "startTime": start[i] if start else ZERO,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": readiness[i] if readiness and i < len(readiness) else "True",
                    }
                ],
            },
        }
        if deleted and deleted[i]:
            pod["metadata"]["deletionTimestamp"] = NOW
        pods.append(pod)
    return pods


def res_metrics(levels, names=None):
    return {
        (names[i] if names and i < len(names) else f"test-pod-{i}"): PodMetric(2 * lv, ZERO, 60.0)
        for i, lv in enumerate(levels)
    }


def run_resource(
    current,
    requests,
    levels,
    target,
    readiness=None,
    phases=None,
    start=None,
    deleted=None,
    names=None,
    pods_count=None,
    tol=TOL,
):
    n = max(current, len(phases) if phases else 0) if pods_count is None else pods_count
    pods = make_pods(n, requests, readiness, phases, start, deleted)
    metrics = res_metrics(levels, names)
    return CALC.get_resource_replicas(current, target, "cpu", tol, pods, metrics, NOW)


ONE = "1.0"

RESOURCE_CASES = [
    # name, current, requests, levels, target, kwargs, (replicas, utilization, rawValue)
    ("ScaleUp", 3, [ONE] * 3, [300, 500, 700], 30, {}, (5, 50, 2 * 500)),
    (
        "ScaleUpUnreadyLessScale",
        3,
        [ONE] * 3,
        [300, 500, 700],
        30,
        {"readiness": ["False", "True", "True"]},
        (4, 60, 2 * 600),
    ),
    (
        "ScaleUpHotCpuLessScale",
        3,
        [ONE] * 3,
        [300, 500, 700],
        30,
        {"start": [HOT, COOL, COOL]},
        (4, 60, 2 * 600),
    ),
    (
        "ScaleUpUnreadyNoScale",
        3,
        [ONE] * 3,
        [400, 500, 700],
        30,
        {"readiness": ["True", "False", "False"]},
        (3, 40, 2 * 400),
    ),
    (
        "ScaleHotCpuNoScale",
        3,
        [ONE] * 3,
        [400, 500, 700],
        30,
        {"readiness": ["True", "False", "False"], "start": [COOL, HOT, HOT]},
        (3, 40, 2 * 400),
    ),
    (
        "ScaleUpIgnoresFailedPods",
        2,
        [ONE] * 4,
        [500, 700],
        30,
        {
            "readiness": ["True", "True", "False", "False"],
            "phases": ["Running", "Running", "Failed", "Failed"],
        },
        (4, 60, 2 * 600),
    ),
    (
        "ScaleUpIgnoresDeletionPods",
        2,
        [ONE] * 4,
        [500, 700],
        30,
        {
            "readiness": ["True", "True", "False", "False"],
            "phases": ["Running"] * 4,
            "deleted": [False, False, True, True],
        },
        (4, 60, 2 * 600),
    ),
    ("ScaleDown", 5, [ONE] * 5, [100, 300, 500, 250, 250], 50, {}, (3, 28, 2 * 280)),
    (
        "ScaleDownIncludeUnreadyPods",
        5,
        [ONE] * 5,
        [100, 300, 500, 250, 250],
        50,
        {"readiness": ["True", "True", "True", "False", "False"]},
        (2, 30, 2 * 300),
    ),
    (
        "ScaleDownExcludeUnscheduledPods",
        5,
        [ONE] * 5,
        [100],
        50,
        {
            "readiness": ["True", "False", "False", "False", "False"],
            "phases": ["Running"] + ["Pending"] * 4,
        },
        (1, 10, 2 * 100),
    ),
    (
        "ScaleDownIgnoreHotCpuPods",
        5,
        [ONE] * 5,
        [100, 300, 500, 250, 250],
        50,
        {"start": [COOL, COOL, COOL, HOT, HOT]},
        (2, 30, 2 * 300),
    ),
    (
        "ScaleDownIgnoresFailedPods",
        5,
        [ONE] * 7,
        [100, 300, 500, 250, 250],
        50,
        {"readiness": ["True"] * 5 + ["False"] * 2, "phases": ["Running"] * 5 + ["Failed"] * 2},
        (3, 28, 2 * 280),
    ),
    (
        "ScaleDownIgnoresDeletionPods",
        5,
        [ONE] * 7,
        [100, 300, 500, 250, 250],
        50,
        {
            "readiness": ["True"] * 5 + ["False"] * 2,
            "phases": ["Running"] * 7,
            "deleted": [False] * 5 + [True] * 2,
        },
        (3, 28, 2 * 280),
    ),
    ("Tolerance", 3, ["0.9", "1.0", "1.1"], [1010, 1030, 1020], 100, {}, (3, 102, 2 * 1020)),
    (
        "SuperfluousMetrics",
        4,
        [ONE] * 4,
        [4000, 9500, 3000, 7000, 3200, 2000],
        100,
        {},
        (24, 587, 2 * 5875),
    ),
    ("MissingMetrics", 4, [ONE] * 4, [400, 95], 100, {}, (3, 24, 495)),
    ("MissingMetricsNoChangeEq", 2, [ONE] * 2, [1000], 100, {}, (2, 100, 2 * 1000)),
    ("MissingMetricsNoChangeGt", 2, [ONE] * 2, [1900], 100, {}, (2, 190, 2 * 1900)),
    ("MissingMetricsNoChangeLt", 2, [ONE] * 2, [600], 100, {}, (2, 60, 2 * 600)),
    (
        "MissingMetricsUnreadyChange",
        3,
        [ONE] * 3,
        [100, 450],
        50,
        {"readiness": ["False", "True", "True"]},
        (3, 45, 2 * 450),
    ),
    (
        "MissingMetricsHotCpuNoChange",
        3,
        [ONE] * 3,
        [100, 450],
        50,
        {"start": [HOT, COOL, COOL]},
        (3, 45, 2 * 450),
    ),
    (
        "MissingMetricsUnreadyScaleUp",
        3,
        [ONE] * 3,
        [100, 2000],
        50,
        {"readiness": ["False", "True", "True"]},
        (4, 200, 2 * 2000),
    ),
    (
        "MissingMetricsHotCpuScaleUp",
        3,
        [ONE] * 3,
        [100, 2000],
        50,
        {"readiness": ["False", "True", "True"], "start": [HOT, COOL, COOL]},
        (4, 200, 2 * 2000),
    ),
    (
        "MissingMetricsUnreadyScaleDown",
        4,
        [ONE] * 4,
        [100, 100, 100],
        50,
        {"readiness": ["False", "True", "True", "True"]},
        (3, 10, 2 * 100),
    ),
    (
        "MissingMetricsScaleDownTargetOver100",
        4,
        ["1.0", "1.0", "2.0", "2.0"],
        [200, 100, 100],
        300,
        {"readiness": ["False", "True", "True", "True"]},
        (2, 6, 2 * 100),
    ),
    (
        "DuringRollingUpdateWithMaxSurge",
        2,
        [ONE] * 3,
        [100, 100],
        50,
        {"phases": ["Running"] * 3},
        (2, 10, 2 * 100),
    ),
]


@pytest.mark.parametrize(
    ("name", "current", "requests", "levels", "target", "kw", "expected"),
    RESOURCE_CASES,
    ids=[c[0] for c in RESOURCE_CASES],
)
def test_upstream_resource_cases(name, current, requests, levels, target, kw, expected):
    assert run_resource(current, requests, levels, target, **kw) == expected


def test_disjoint_resource_metrics_error():
    with pytest.raises(MetricError, match="no metrics returned matched known pods"):
        run_resource(1, [ONE], [100], 100, names=["an-older-pod-name"])


def test_empty_metrics_error():
    with pytest.raises(MetricError, match="no metrics returned from resource metrics API"):
        run_resource(4, [ONE] * 3, [], 100)


def test_empty_cpu_request_error():
    with pytest.raises(MetricError, match="missing request for"):
        run_resource(1, [], [200], 100)


def test_all_unready_error():
    with pytest.raises(MetricError, match="did not receive metrics for targeted pods"):
        run_resource(2, [ONE] * 2, [100, 100], 50, phases=["Pending", "Pending"])


def test_computed_tolerance_alg_implementation():
    """TestReplicaCalcComputedToleranceAlgImplementation.

    Minimal scale-down, then inside the margin.
    """
    start_pods = 10
    total_used = start_pods * 150
    total_requested = 2 * total_used
    requested_to_used = float(total_requested // total_used)
    per_pod_requested = total_requested // start_pods
    target = abs(1 / (requested_to_used * (1 - 0.1))) + 0.01
    final_target = int(target * 100)
    used_ratio = total_used / (total_requested * target)
    final_pods = math.ceil(used_ratio * start_pods)
    reqs = [f"{per_pod_requested + d}m" for d in (100, -100, 10, -10, 2, -2, 1, -1, 0, 0)]
    levels = [total_used // 10] * 10
    got = run_resource(start_pods, reqs, levels, final_target)
    assert got == (final_pods, (total_used * 100) // total_requested, 2 * total_used // 10)
    target = abs(1 / (requested_to_used * (1 - 0.1))) + 0.004
    assert run_resource(start_pods, reqs, levels, int(target * 100))[0] == start_pods


# --- Pods (custom) metrics: calcPlainMetricReplicas ---------------------------------------------


def run_pods_metric(current, levels, target, readiness=None, start=None, tol=TOL):
    pods = make_pods(current, readiness=readiness, start=start)
    metrics = {f"test-pod-{i}": PodMetric(lv, ZERO, 60) for i, lv in enumerate(levels)}
    return CALC.get_metric_replicas(current, target, "qps", tol, pods, metrics, NOW)


@pytest.mark.parametrize(
    ("current", "levels", "target", "kw", "expected"),
    [
        (3, [20000, 10000, 30000], 15000, {}, (4, 20000)),  # ScaleUpCM
        (
            3,
            [50000, 10000, 30000],
            15000,
            {"readiness": ["True", "True", "False"], "start": [COOL, COOL, HOT]},
            (6, 30000),
        ),  # UnreadyHotCpuNoLessScale
        (
            3,
            [50000, 15000, 30000],
            15000,
            {"readiness": ["False", "True", "False"], "start": [HOT, COOL, HOT]},
            (7, 31666),
        ),  # ...ScaleWouldScaleDown
        (5, [12000] * 5, 20000, {}, (3, 12000)),  # ScaleDownCM
        (3, [20000, 21000, 21000], 20000, {}, (3, 20666)),  # ToleranceCM
    ],
)
def test_upstream_pods_metric_cases(current, levels, target, kw, expected):
    assert run_pods_metric(current, levels, target, **kw) == expected


def test_plain_metric_missing_pods_scale_down_filled_with_target():
    # 2 of 4 pods report 5000 against a 10000 target: missing pods count as exactly the target.
    got = run_pods_metric(4, [5000, 5000], 10000)
    # ratio 0.5 -> fill 10000 -> avg 7500 -> ratio 0.75 -> ceil(0.75*4) = 3
    assert got == (3, 5000)


# --- Object and External ------------------------------------------------------------------------


def test_upstream_object_and_external_cases():
    pods3 = make_pods(3)
    assert CALC.get_object_metric_replicas(3, 15000, 20000, TOL, pods3) == (
        4,
        20000,
    )  # ScaleUpCMObject
    assert CALC.get_object_per_pod_metric_replicas(3, 5000, 20000, TOL) == (4, 6667)  # PerPodObject
    unready = make_pods(3, readiness=["False", "True", "False"])
    assert CALC.get_object_metric_replicas(3, 10000, 50000, TOL, unready)[0] == 5  # IgnoresUnready
    assert (
        CALC.get_external_metric_replicas(3, 4400, [8600], TOL, unready)[0] == 2
    )  # External unready
    assert CALC.get_external_per_pod_metric_replicas(3, 2150, [8600], TOL) == (
        4,
        2867,
    )  # PerPodExternal
    pods5 = make_pods(5)
    assert CALC.get_object_per_pod_metric_replicas(5, 2000, 6000, TOL) == (
        3,
        1200,
    )  # ScaleDownPerPodObject
    assert CALC.get_object_metric_replicas(5, 20000, 12000, TOL, pods5) == (
        3,
        12000,
    )  # ScaleDownCMObject
    assert CALC.get_external_metric_replicas(5, 14334, [8600], TOL, pods5) == (
        3,
        8600,
    )  # ScaleDownCMExternal
    assert CALC.get_external_per_pod_metric_replicas(5, 2867, [8600], TOL) == (
        3,
        1720,
    )  # ScaleDownPerPodExt
    assert CALC.get_object_metric_replicas(3, 20000, 20666, TOL, pods3) == (
        3,
        20666,
    )  # ToleranceCMObject
    assert CALC.get_object_per_pod_metric_replicas(4, 5000, 20166, TOL) == (
        4,
        5042,
    )  # TolerancePerPodObject
    assert CALC.get_external_metric_replicas(3, 8888, [8600], TOL, pods3) == (
        3,
        8600,
    )  # ToleranceCMExternal
    assert CALC.get_external_per_pod_metric_replicas(3, 2900, [8600], TOL) == (
        3,
        2867,
    )  # TolerancePerPodExt
    assert CALC.get_object_metric_replicas(0, 10000, 25000, TOL, []) == (
        3,
        25000,
    )  # scale from zero


def test_tolerance_interval_is_closed_and_per_direction():
    assert Tolerances(0.1, 0.1).is_within(1.1)
    assert Tolerances(0.1, 0.1).is_within(0.9)
    assert not Tolerances(0.1, 0.1).is_within(1.1000001)
    # API reference example: 100Mi target, 5 % down / 1 % up -> scale below 95Mi or above 101Mi
    t = Tolerances(scale_down=0.05, scale_up=0.01)
    assert t.is_within(0.95) and t.is_within(1.01)
    assert not t.is_within(0.949) and not t.is_within(1.011)


def test_utilization_truncates_and_ratio_on_edge_holds():
    # usage 1100m over 1000m request -> utilization exactly 110 -> ratio 1.1 (edge) -> no change
    pods = make_pods(1, ["500m"])
    metrics = {"test-pod-0": PodMetric(1100, ZERO, 60)}
    assert CALC.get_resource_replicas(1, 100, "cpu", TOL, pods, metrics, NOW) == (1, 110, 1100)
    # 1109m -> int(110.9) = 110: truncated, still on the edge -> no change
    metrics = {"test-pod-0": PodMetric(1109, ZERO, 60)}
    assert CALC.get_resource_replicas(1, 100, "cpu", TOL, pods, metrics, NOW)[:2] == (1, 110)
    # 1110m -> 111 -> ratio 1.11 -> ceil(1.11) = 2
    metrics = {"test-pod-0": PodMetric(1110, ZERO, 60)}
    assert CALC.get_resource_replicas(1, 100, "cpu", TOL, pods, metrics, NOW)[0] == 2


# --- configurable tolerance (KEP-4951); Tolerances(scale_down, scale_up) as upstream orders it ---

UNEVEN = ["0.9", "1.0", "1.1"]


@pytest.mark.parametrize(
    ("tol", "levels", "expected"),
    [
        # TestReplicaCalcConfigurableTolerance: (replicas, utilization, raw average)
        pytest.param(
            Tolerances(0.0, 0.0),
            [909, 1010, 1111],
            (4, 101, 2 * 1010),
            id="Outside of a 0% tolerance",
        ),
        pytest.param(
            Tolerances(0.1, 2.0),
            [1890, 1910, 1900],
            (3, 190, 2 * 1900),
            id="Within a 200% scale-up tolerance",
        ),
        pytest.param(
            Tolerances(2.0, 0.08),
            [1100, 1080, 1090],
            (4, 109, 2 * 1090),
            id="Outside 8% scale-up tolerance (and superfuous scale-down tolerance)",
        ),
        pytest.param(
            Tolerances(0.36, 0.1),
            [660, 640, 650],
            (3, 65, 2 * 650),
            id="Within a 36% scale-down tolerance",
        ),
        pytest.param(
            Tolerances(0.34, 0.1),
            [660, 640, 650],
            (2, 65, 2 * 650),
            id="Outside a 34% scale-down tolerance",
        ),
    ],
)
def test_upstream_configurable_tolerance_resource(tol, levels, expected):
    assert run_resource(3, UNEVEN, levels, 100, tol=tol) == expected


def test_upstream_configurable_tolerance_custom_object_external():
    up1 = Tolerances(0.1, 0.01)  # defaultTestingTolerance down, 1 % up
    pods3 = make_pods(3)
    # TestReplicaCalcConfigurableToleranceCM, ...CMObject, ...PerPodCMObject, ...CMExternal,
    # ...PerPodCMExternal
    assert run_pods_metric(3, [20000, 21000, 21000], 20000, tol=up1) == (4, 20666)
    assert CALC.get_object_metric_replicas(3, 20000, 20666, up1, pods3) == (4, 20666)
    assert CALC.get_object_per_pod_metric_replicas(4, 5000, 20208, up1) == (5, 5052)
    assert CALC.get_external_metric_replicas(3, 8800, [8900], up1, pods3) == (4, 8900)
    assert CALC.get_external_per_pod_metric_replicas(3, 2800, [8600], up1) == (4, 2867)
