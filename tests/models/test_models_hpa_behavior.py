"""Upstream horizontal_test.go and apis/autoscaling/v2/defaults_test.go cases: behavior defaults,
stabilization, rate policies with scale-event history, event storage, per-direction tolerance.

Facts (inputs and expected numbers) are upstream's; the code is this project's. Each case carries
the upstream test and case name. Upstream builds events with generateEventsUniformDistribution
(events at the centres of equal segments of the last `period` seconds) and works at time.Now();
here the same offsets are taken from a fixed NOW.
"""

from __future__ import annotations

import pytest

from harness.models.hpa import (
    HPAController,
    convert_desired_replicas_with_rules,
    get_replicas_change_per_period,
    scale_down_limit_with_rules,
    scale_up_limit_with_rules,
)

NOW = 1_700_000_000.0
# horizontal_test.go init(): "set this high so we don't accidentally run into it when testing"
UPSTREAM_SCALE_UP_LIMIT_FACTOR = 8
CPU50 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}


def hpa(min_r=1, max_r=10, behavior=None, metrics=None):
    spec = {"minReplicas": min_r, "maxReplicas": max_r, "metrics": metrics or [CPU50]}
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "spec": spec}


def rules(pods, pods_period, percent, percent_period, stabilization):
    """generateScalingRules: a Pods then a Percent policy (a zero value omits it), select Max."""
    policies = []
    if pods:
        policies.append({"type": "Pods", "value": pods, "periodSeconds": pods_period})
    if percent:
        policies.append({"type": "Percent", "value": percent, "periodSeconds": percent_period})
    return {
        "stabilizationWindowSeconds": stabilization,
        "selectPolicy": "Max",
        "policies": policies,
    }


def uniform_events(changes, period):
    """generateEventsUniformDistribution: event i at now - int(period - seg*(i+1) + seg/2)."""
    seg = period / len(changes)
    return [
        {"replicaChange": c, "timestamp": NOW - int(period - seg * (i + 1) + seg / 2)}
        for i, c in enumerate(changes)
    ]


# --- TestConvertDesiredReplicasWithRules (legacy path, no spec.behavior) ----------------------


@pytest.mark.parametrize(
    ("current", "desired", "min_r", "max_r", "expected", "condition"),
    [
        pytest.param(
            5, 7, 3, 8, 7, "DesiredWithinRange", id="prenormalized desired replicas within range"
        ),
        pytest.param(
            3, 1, 2, 8, 2, "TooFewReplicas", id="prenormalized desired replicas < minReplicas"
        ),
        pytest.param(
            1,
            0,
            0,
            10,
            0,
            "DesiredWithinRange",
            id="prenormalized desired zeroed replicas within range",
        ),
        pytest.param(
            20,
            1000,
            1,
            10,
            10,
            "TooManyReplicas",
            id="maxReplicas is the limit because maxReplicas < scaleUpLimit",
        ),
        pytest.param(
            3,
            1000,
            1,
            2000,
            24,
            "ScaleUpLimit",  # calculateScaleUpLimit(3) = 8 * 3
            id="scaleUpLimit is the limit because scaleUpLimit < maxReplicas",
        ),
    ],
)
def test_upstream_convert_desired_replicas_with_rules(
    current, desired, min_r, max_r, expected, condition
):
    got = convert_desired_replicas_with_rules(
        current, desired, min_r, max_r, scale_up_limit_factor=UPSTREAM_SCALE_UP_LIMIT_FACTOR
    )
    assert got[:2] == (expected, condition)


# --- TestCalculateScaleUpLimitWithScalingRules, TestCalculateScaleDownLimitWithBehaviors ---------


def test_upstream_calculate_scale_limits_select_min():
    r = {
        "selectPolicy": "Min",
        "policies": [
            {"type": "Pods", "value": 2, "periodSeconds": 60},
            {"type": "Percent", "value": 50, "periodSeconds": 60},
        ],
    }
    assert scale_up_limit_with_rules(1, [], [], r, NOW) == 2
    assert scale_down_limit_with_rules(5, [], [], r, NOW) == 3


# --- TestGenerateScaleUpRules, TestGenerateScaleDownRules (apis/autoscaling/v2) -----------------


def pol(*items):
    return [{"type": t, "value": v, "periodSeconds": p} for t, v, p in items]


@pytest.mark.parametrize(
    ("given", "policies", "stabilization", "select"),
    [
        pytest.param({}, pol(("Pods", 4, 15), ("Percent", 100, 15)), 0, "Max", id="Default values"),
        pytest.param(
            {
                "policies": pol(("Pods", 1, 2), ("Percent", 3, 4)),
                "stabilizationWindowSeconds": 25,
                "selectPolicy": "Max",
            },
            pol(("Pods", 1, 2), ("Percent", 3, 4)),
            25,
            "Max",
            id="All parameters are specified",
        ),
        pytest.param(
            {"policies": pol(("Pods", 1, 2)), "selectPolicy": "Min"},
            pol(("Pods", 1, 2)),
            0,
            "Min",
            id="Pod policy is specified",
        ),
        pytest.param(
            {"policies": pol(("Percent", 7, 10))},
            pol(("Percent", 7, 10)),
            0,
            "Max",
            id="Percent policy is specified",
        ),
        pytest.param(
            {"policies": pol(("Pods", 4, 2)), "stabilizationWindowSeconds": 25},
            pol(("Pods", 4, 2)),
            25,
            "Max",
            id="Pod policy and stabilization window are specified",
        ),
        pytest.param(
            {"policies": pol(("Percent", 7, 60)), "stabilizationWindowSeconds": 25},
            pol(("Percent", 7, 60)),
            25,
            "Max",
            id="Percent policy and stabilization window are specified",
        ),
    ],
)
def test_upstream_generate_scale_up_rules(given, policies, stabilization, select):
    behavior = HPAController(hpa(behavior={"scaleUp": given})).behavior
    assert behavior is not None
    up = behavior["scaleUp"]
    got = (up["policies"], up["stabilizationWindowSeconds"], up["selectPolicy"])
    assert got == (policies, stabilization, select)


@pytest.mark.parametrize(
    ("given", "policies", "stabilization", "select"),
    [
        # a nil window means the controller's --horizontal-pod-autoscaler-downscale-stabilization
        pytest.param({}, pol(("Percent", 100, 15)), None, "Max", id="Default values"),
        pytest.param(
            {
                "policies": pol(("Pods", 1, 2), ("Percent", 3, 4)),
                "stabilizationWindowSeconds": 25,
                "selectPolicy": "Max",
            },
            pol(("Pods", 1, 2), ("Percent", 3, 4)),
            25,
            "Max",
            id="All parameters are specified",
        ),
        pytest.param(
            {"policies": pol(("Percent", 1, 2)), "selectPolicy": "Min"},
            pol(("Percent", 1, 2)),
            None,
            "Min",
            id="Percent policy is specified",
        ),
        pytest.param(
            {"policies": pol(("Pods", 3, 4))},
            pol(("Pods", 3, 4)),
            None,
            "Max",
            id="Pods policy is specified",
        ),
    ],
)
def test_upstream_generate_scale_down_rules(given, policies, stabilization, select):
    flag = 123.0  # stands for the controller flag, so that "nil" shows
    ctl = HPAController(hpa(behavior={"scaleDown": given}), downscale_stabilization_s=flag)
    assert ctl.behavior is not None
    down = ctl.behavior["scaleDown"]
    window = flag if stabilization is None else stabilization
    got = (down["policies"], down["stabilizationWindowSeconds"], down["selectPolicy"])
    assert got == (policies, window, select)


# --- TestNormalizeDesiredReplicas (legacy stabilizeRecommendation, 5 min window) ---------------


@pytest.mark.parametrize(
    ("recs", "desired", "expected", "log_length"),
    [
        pytest.param([], 5, 5, 1, id="empty log"),
        pytest.param([(4, 120), (5, 60)], 3, 5, 3, id="stabilize"),
        pytest.param([(1, 120), (2, 60)], 3, 3, 3, id="no stabilize"),
        pytest.param([(10, 600), (9, 540)], 3, 3, 2, id="no stabilize - old recommendations"),
        pytest.param(
            [(10, 600), (4, 60), (5, 120), (9, 540)], 3, 5, 4, id="stabilize - old recommendations"
        ),
    ],
)
def test_upstream_normalize_desired_replicas(recs, desired, expected, log_length):
    ctl = HPAController(hpa(), downscale_stabilization_s=300)
    ctl.load_history(
        {"recommendations": [{"replicas": r, "timestamp": NOW - ago} for r, ago in recs]}
    )
    assert ctl.stabilize_recommendation(desired, NOW) == expected
    assert len(ctl.recommendations) == log_length


# --- TestNormalizeDesiredReplicasWithBehavior (stabilizeRecommendationWithBehaviors) ------------


def stab(name, recs, current, desired, expected, stored=None, up=0, down=0):
    """recs: (replicas, seconds ago); stored: the recommendations kept (None: unchecked)."""
    return pytest.param(recs, current, desired, up, down, expected, stored, id=name)


@pytest.mark.parametrize(
    ("recs", "current", "desired", "up", "down", "expected", "stored"),
    [
        stab("empty recommendations for scaling down", [], 100, 5, 5, [5]),
        stab(
            "simple scale down stabilization", [(4, 120), (5, 60)], 100, 3, 5, [4, 5, 3], down=180
        ),
        stab("simple scale up stabilization", [(4, 120), (5, 60)], 1, 7, 4, [4, 5, 7], up=300),
        stab("no scale down stabilization", [(1, 120), (2, 60)], 100, 3, 3, [1, 2, 3], up=300),
        stab("no scale up stabilization", [(4, 120), (5, 60)], 1, 3, 3, [4, 5, 3], down=300),
        stab(
            "no scale down stabilization, reuse recommendation element",
            [(10, 600), (9, 540)],
            100,
            3,
            3,
            [10, 3],
        ),
        stab(
            "no scale up stabilization, reuse recommendation element",
            [(10, 600), (9, 540)],
            1,
            100,
            100,
            [10, 100],
        ),
        stab(
            "scale down stabilization, reuse one of obsolete recommendation element",
            [(10, 600), (4, 60), (5, 120), (9, 540)],
            100,
            3,
            5,
            [10, 4, 5, 3],
            down=180,
        ),
        stab(
            "scale up stabilization, reuse one of obsolete recommendation element",
            [(10, 6000), (6, 60), (5, 120), (9, 180)],
            1,
            100,
            5,
            [100, 6, 5, 9],
            up=300,
        ),
        stab(
            "scale up and down stabilization, do not scale up when prenormalized rec goes down",
            [(2, 6000), (3, 180)],
            2,
            1,
            2,
            up=300,
            down=300,
        ),
        stab(
            "scale up and down stabilization, do not scale down when prenormalized rec goes up",
            [(2, 6000), (1, 180)],
            2,
            3,
            2,
            up=300,
            down=300,
        ),
    ],
)
def test_upstream_normalize_desired_replicas_with_behavior(
    recs, current, desired, up, down, expected, stored
):
    behavior = {
        "scaleUp": {"stabilizationWindowSeconds": up},
        "scaleDown": {"stabilizationWindowSeconds": down},
    }
    ctl = HPAController(hpa(max_r=1000, behavior=behavior))
    ctl.load_history(
        {"recommendations": [{"replicas": r, "timestamp": NOW - ago} for r, ago in recs]}
    )
    got, _, _ = ctl.stabilize_recommendation_with_behaviors(current, desired, NOW)
    assert got == expected
    if stored is not None:
        assert [r.replicas for r in ctl.recommendations] == stored


# --- TestScalingWithRules (convertDesiredReplicasWithBehaviorRate) ------------------------------


def rate(
    name,
    current,
    desired,
    expected,
    condition,
    *,
    min_r=1,
    max_r=1000,
    up=None,
    down=None,
    up_events=None,
    down_events=None,
):
    """up/down: scaleUp/scaleDown rules (None: the defaults); *_events: (changes, period)."""
    return pytest.param(
        current,
        desired,
        min_r,
        max_r,
        up,
        down,
        up_events,
        down_events,
        expected,
        condition,
        id=name,
    )


E159, E4, E2 = ([1, 5, 9], 120), ([4], 120), ([2], 120)
E8129, E246, E101010 = ([8, 12, 9, 11], 120), ([2, 4, 6], 120), ([10, 10, 10], 120)

SCALING_WITH_RULES = [
    rate(
        "prenormalized desired replicas within range",
        5,
        7,
        7,
        "DesiredWithinRange",
        min_r=3,
        max_r=8,
    ),
    rate(
        "prenormalized desired replicas < minReplicas", 3, 1, 2, "TooFewReplicas", min_r=2, max_r=8
    ),
    rate(
        "prenormalized desired replicas within range when minReplicas is 0",
        1,
        0,
        0,
        "DesiredWithinRange",
        min_r=0,
        max_r=10,
    ),
    rate(
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        20,
        1000,
        10,
        "TooManyReplicas",
        max_r=10,
    ),
    rate(
        "desired replica count is more than the maximum replica count",
        100,
        1000,
        150,
        "TooManyReplicas",
        min_r=100,
        max_r=150,
    ),
    rate(
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        3,
        1000,
        4,
        "ScaleUpLimit",
        max_r=2000,
        up=rules(0, 0, 1, 60, 0),
    ),
    # upstream marks this case testThis and returns early; its numbers hold here all the same
    rate(
        "scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined "
        "policies",
        1000,
        3,
        980,
        "ScaleDownLimit",
        min_r=3,
        max_r=2000,
        down=rules(20, 60, 0, 0, 0),
    ),
    rate("scaleUp with default behavior", 10, 50, 20, "ScaleUpLimit"),
    rate(
        "scaleUp with pods policy larger than percent policy",
        10,
        500,
        110,
        "ScaleUpLimit",
        up=rules(100, 60, 100, 60, 0),
    ),
    rate(
        "scaleUp with percent policy larger than pods policy",
        10,
        500,
        20,
        "ScaleUpLimit",
        up=rules(2, 60, 100, 60, 0),
    ),
    rate(
        "scaleUp with spec MaxReplicas limitation with large pod policy",
        10,
        50,
        50,
        "DesiredWithinRange",
        up=rules(100, 60, 0, 0, 0),
    ),
    rate(
        "scaleUp with spec MaxReplicas limitation with large percent policy",
        10,
        50,
        50,
        "DesiredWithinRange",
        up=rules(10000, 60, 0, 0, 0),
    ),
    rate(
        "scaleUp with pod policy limitation", 10, 50, 40, "ScaleUpLimit", up=rules(30, 60, 0, 0, 0)
    ),
    rate(
        "scaleUp with percent policy limitation",
        10,
        50,
        30,
        "ScaleUpLimit",
        up=rules(0, 0, 200, 60, 0),
    ),
    rate(
        "scaleDown with percent policy larger than pod policy",
        100,
        2,
        80,
        "ScaleDownLimit",
        down=rules(20, 60, 1, 60, 300),
    ),
    rate(
        "scaleDown with pod policy larger than percent policy",
        100,
        2,
        98,
        "ScaleDownLimit",
        down=rules(2, 60, 1, 60, 300),
    ),
    rate(
        "scaleDown with spec MinReplicas=nil limitation with large pod policy",
        10,
        0,
        1,
        "TooFewReplicas",
        down=rules(100, 60, 0, 0, 300),
    ),
    rate(
        "scaleDown with spec MinReplicas limitation with large pod policy",
        10,
        0,
        1,
        "TooFewReplicas",
        down=rules(100, 60, 0, 0, 300),
    ),
    rate(
        "scaleDown with spec MinReplicas limitation with large percent policy",
        10,
        2,
        5,
        "TooFewReplicas",
        min_r=5,
        down=rules(0, 0, 100, 60, 300),
    ),
    rate(
        "scaleDown with pod policy limitation",
        10,
        2,
        5,
        "ScaleDownLimit",
        down=rules(5, 60, 0, 0, 300),
    ),
    rate(
        "scaleDown with percent policy limitation",
        10,
        5,
        5,
        "DesiredWithinRange",
        down=rules(0, 0, 50, 60, 300),
    ),
    rate(
        "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        100,
        500,
        200,
        "TooManyReplicas",
        max_r=200,
        up=rules(300, 60, 0, 0, 0),
        up_events=E159,
    ),
    rate(
        "scaleUp with spec MaxReplicas limitation with large percent policy and events",
        100,
        500,
        200,
        "TooManyReplicas",
        max_r=200,
        up=rules(0, 0, 10000, 60, 0),
        up_events=E159,
    ),
    rate(
        "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent "
        "scale up events",
        100,
        500,
        100,
        "ScaleUpLimit",
        up=rules(5, 120, 0, 0, 0),
        up_events=E159,
    ),
    rate(
        "scaleUp with pod policy and previous scale up events",
        100,
        500,
        235,
        "ScaleUpLimit",
        up=rules(150, 120, 0, 0, 0),
        up_events=E159,
    ),
    rate(
        "scaleUp with percent policy and previous scale up events",
        100,
        500,
        255,
        "ScaleUpLimit",
        up=rules(0, 0, 200, 120, 0),
        up_events=E159,
    ),
    rate(
        "scaleUp with percent policy and previous scale up and down events",
        6,
        24,
        16,
        "ScaleUpLimit",
        up=rules(0, 0, 300, 300, 0),
        up_events=E4,
        down_events=E2,
    ),
    rate(
        "scaleDown with default policy and previous events",
        10,
        5,
        5,
        "DesiredWithinRange",
        down_events=E159,
    ),
    rate(
        "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        100,
        0,
        1,
        "TooFewReplicas",
        down=rules(115, 120, 0, 0, 300),
        down_events=E159,
    ),
    rate(
        "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        100,
        0,
        5,
        "TooFewReplicas",
        min_r=5,
        down=rules(130, 120, 0, 0, 300),
        down_events=E159,
    ),
    rate(
        "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        100,
        2,
        5,
        "TooFewReplicas",
        min_r=5,
        down=rules(0, 0, 100, 120, 300),
        down_events=E159,
    ),
    rate(
        "scaleDown with pod policy limitation and previous events",
        100,
        2,
        100,
        "ScaleDownLimit",
        down=rules(5, 120, 0, 0, 300),
        down_events=E159,
    ),
    rate(
        "scaleDown with percent policy limitation and previous events",
        100,
        0,
        56,
        "ScaleDownLimit",
        down=rules(0, 0, 50, 120, 300),
        down_events=E246,
    ),
    rate(
        "scaleDown with percent policy and previous scale up and down events",
        10,
        1,
        6,
        "ScaleDownLimit",
        down=rules(0, 0, 50, 180, 0),
        up_events=E2,
        down_events=E4,
    ),
    rate(
        "scaleDown with previous events preventing further scale down",
        100,
        0,
        100,
        "ScaleDownLimit",
        down=rules(0, 0, 10, 120, 300),
        down_events=E101010,
    ),
    rate(
        "scaleDown with with previous events still allowing more scale down",
        10,
        5,
        5,
        "DesiredWithinRange",
        down=rules(0, 0, 1000, 120, 300),
        down_events=E101010,
    ),
    rate(
        "check 'outdated' flag for events for one behavior for up",
        100,
        200,
        200,
        "DesiredWithinRange",
        up=rules(1000, 60, 0, 0, 0),
        up_events=E8129,
    ),
    rate(
        "check that events were not marked 'outdated' for two different policies in the "
        "behavior for up",
        100,
        200,
        200,
        "DesiredWithinRange",
        up=rules(1000, 120, 100, 60, 0),
        up_events=E8129,
    ),
    rate(
        "check that events were marked 'outdated' for two different policies in the behavior "
        "for up",
        100,
        200,
        200,
        "DesiredWithinRange",
        up=rules(1000, 30, 100, 60, 0),
        up_events=E8129,
    ),
    rate(
        "check 'outdated' flag for events for one behavior for down",
        100,
        5,
        5,
        "DesiredWithinRange",
        down=rules(1000, 60, 0, 0, 300),
        down_events=E8129,
    ),
    rate(
        "check that events were not marked 'outdated' for two different policies in the "
        "behavior for down",
        100,
        5,
        5,
        "DesiredWithinRange",
        down=rules(1000, 120, 100, 60, 300),
        down_events=E8129,
    ),
    rate(
        "check that events were marked 'outdated' for two different policies in the behavior "
        "for down",
        100,
        5,
        5,
        "DesiredWithinRange",
        down=rules(1000, 30, 100, 60, 300),
        down_events=E8129,
    ),
]


@pytest.mark.parametrize(
    (
        "current",
        "desired",
        "min_r",
        "max_r",
        "up",
        "down",
        "up_events",
        "down_events",
        "expected",
        "condition",
    ),
    SCALING_WITH_RULES,
)
def test_upstream_scaling_with_rules(
    current, desired, min_r, max_r, up, down, up_events, down_events, expected, condition
):
    behavior = {k: v for k, v in (("scaleUp", up), ("scaleDown", down)) if v is not None}
    ctl = HPAController(hpa(min_r=min_r, max_r=max_r, behavior=behavior))
    ctl.load_history(
        {
            "scaleUpEvents": uniform_events(*up_events) if up_events else [],
            "scaleDownEvents": uniform_events(*down_events) if down_events else [],
        }
    )
    got, reason, _ = ctl.convert_desired_replicas_with_behavior_rate(current, desired, NOW)
    assert (got, reason) == (expected, condition)


# --- TestStoreScaleEvents (storeScaleEvent, getReplicasChangePerPeriod) --------------------------


def store(name, prev, rule, change_before, after):
    """prev: (change, seconds ago); rule None: no spec.behavior; after: (change, outdated)."""
    return pytest.param(prev, rule, change_before, after, id=name)


STORE_CASES = [
    store("empty entries with default behavior", [], None, 0, []),
    store("empty entries with two-policy-behavior", [], rules(10, 60, 100, 60, 0), 0, [(5, False)]),
    store(
        "one outdated entry to be kept untouched without behavior", [(7, 61)], None, 0, [(7, False)]
    ),
    store(
        "one outdated entry to be replaced with behavior",
        [(7, 61)],
        rules(10, 60, 100, 60, 0),
        0,
        [(5, False)],
    ),
    store(
        "one actual entry to be not touched with behavior",
        [(7, 58)],
        rules(10, 60, 100, 60, 0),
        7,
        [(7, False), (5, False)],
    ),
    store(
        "two entries, one of them to be replaced",
        [(7, 61), (6, 59)],
        rules(10, 60, 0, 0, 0),
        6,
        [(5, False), (6, False)],
    ),
    store(
        "replace one entry, use policies with different periods",
        [(8, 29), (6, 59), (7, 61), (9, 61)],
        rules(10, 60, 100, 30, 0),
        14,
        [(8, False), (6, False), (7, True), (5, False)],
    ),
    store(
        "two entries, both actual",
        [(7, 58), (6, 59)],
        rules(10, 120, 100, 30, 0),
        13,
        [(7, False), (6, False), (5, False)],
    ),
]


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize(("prev", "rule", "change_before", "after"), STORE_CASES)
def test_upstream_store_scale_events(direction, prev, rule, change_before, after):
    key, hist = (
        ("scaleUp", "scaleUpEvents") if direction == "up" else ("scaleDown", "scaleDownEvents")
    )
    ctl = HPAController(hpa(max_r=100, behavior={key: rule} if rule is not None else None))
    ctl.load_history({hist: [{"replicaChange": c, "timestamp": NOW - ago} for c, ago in prev]})
    events = ctl.scale_up_events if direction == "up" else ctl.scale_down_events
    assert get_replicas_change_per_period(60, events, NOW) == change_before
    ctl.store_scale_event(10, 15 if direction == "up" else 5, NOW)
    assert [(e.change, e.outdated) for e in events] == after


# --- reconcile-level cases ----------------------------------------------------------------------
# Pods as upstream's testCase builds them: two containers splitting the request and the usage,
# startTime and the Ready lastTransitionTime at Go's zero time, one-minute metric windows; the
# test controller's tolerance 0.1, CPU initialization 2 min, readiness delay 10 s, 5 min window.

ZERO = "0001-01-01T00:00:00Z"
TEST_CONTROLLER = {
    "tolerance": 0.1,
    "cpu_initialization_period_s": 120,
    "initial_readiness_delay_s": 10,
    "downscale_stabilization_s": 300,
}


def cpu_target(percent):
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }


def upstream_pods(levels, requests_m):
    pods, metrics = [], []
    for i, (level, req) in enumerate(zip(levels, requests_m, strict=True)):
        name = f"test-pod-{i}"
        containers = [
            {"name": f"container{j}", "resources": {"requests": {"cpu": f"{req // 2}m"}}}
            for j in (1, 2)
        ]
        ready = [{"type": "Ready", "status": "True", "lastTransitionTime": ZERO}]
        pods.append(
            {
                "metadata": {"name": name},
                "spec": {"containers": containers},
                "status": {"phase": "Running", "startTime": ZERO, "conditions": ready},
            }
        )
        usage = [{"name": f"container{j}", "usage": {"cpu": f"{level // 2}m"}} for j in (1, 2)]
        metrics.append(
            {"metadata": {"name": name}, "timestamp": NOW, "window": "1m0s", "containers": usage}
        )
    return pods, metrics


def reasons(decision):
    return {c["type"]: (c["status"], c["reason"]) for c in decision.conditions}


def external_qps(value):
    return {
        "type": "External",
        "external": {
            "metric": {"name": "qps", "selector": {}},
            "target": {"type": "Value", "value": value},
        },
    }


def test_upstream_scale_up_one_metric_empty():
    """TestScaleUpOneMetricEmpty: CPU 40 % vs 30 % -> 4; a failing external metric does not
    block a scale-up."""
    ctl = HPAController(
        hpa(min_r=2, max_r=6, metrics=[cpu_target(30), external_qps("100m")]), **TEST_CONTROLLER
    )
    pods, metrics = upstream_pods([300, 400, 500], [1000] * 3)
    d = ctl.reconcile(
        NOW, spec_replicas=3, status_replicas=3, pods=pods, pod_metrics=metrics, custom_metrics={}
    )
    assert d.desiredReplicas == 4
    assert d.currentMetrics[0]["resource"]["current"]["averageUtilization"] == 40
    assert d.error  # upstream: reconcile returns the metric error after scaling
    assert reasons(d) == {
        "AbleToScale": ("True", "SucceededRescale"),
        "ScalingActive": ("True", "ValidMetricFound"),
        "ScalingLimited": ("False", "DesiredWithinRange"),
    }


def test_upstream_no_scale_down_one_metric_empty():
    """TestNoScaleDownOneMetricEmpty: CPU 28 % vs 50 % wants 3; the external metric fails, so
    it stays at 5."""
    ctl = HPAController(
        hpa(min_r=2, max_r=6, metrics=[cpu_target(50), external_qps("1")]), **TEST_CONTROLLER
    )
    pods, metrics = upstream_pods([100, 300, 500, 250, 250], [1000] * 5)
    d = ctl.reconcile(NOW, spec_replicas=5, status_replicas=5, pods=pods, pod_metrics=metrics)
    assert d.desiredReplicas == 5 and not d.rescale
    assert reasons(d) == {
        "AbleToScale": ("True", "SucceededGetScale"),
        "ScalingActive": ("False", "FailedGetExternalMetric"),
    }


def test_upstream_stabilize_downscale():
    """TestStabilizeDownscale: 50 % of 0.1 CPU vs 100 % wants 2; the 4 of a minute ago holds."""
    ctl = HPAController(hpa(min_r=1, max_r=5, metrics=[cpu_target(100)]), **TEST_CONTROLLER)
    ctl.load_history(
        {
            "recommendations": [
                {"replicas": 10, "timestamp": NOW - 600},
                {"replicas": 4, "timestamp": NOW - 60},
            ]
        }
    )
    pods, metrics = upstream_pods([50, 50, 50], [100] * 3)
    d = ctl.reconcile(NOW, spec_replicas=4, status_replicas=4, pods=pods, pod_metrics=metrics)
    assert d.desiredReplicas == 4 and not d.rescale
    assert reasons(d) == {
        "AbleToScale": ("True", "ScaleDownStabilized"),
        "ScalingActive": ("True", "ValidMetricFound"),
        "ScalingLimited": ("False", "DesiredWithinRange"),
    }


# --- per-direction tolerance (KEP-4951 spec.behavior.*.tolerance) -------------------------------


def test_upstream_integration_hpa_with_tolerance():
    """test/integration/podautoscaler TestHPAWithTolerance: an external metric with averageValue
    100 per pod (its target says type Value: averageValue wins, as computeStatusForExternalMetric
    reads it), 5 % up and 50 % down tolerance, 35 replicas. The integration controller scales
    down without a stabilization window, so the model's is 0 here."""
    ext = {
        "type": "External",
        "external": {"metric": {"name": "m"}, "target": {"type": "Value", "averageValue": "100"}},
    }
    behavior = {"scaleUp": {"tolerance": "0.05"}, "scaleDown": {"tolerance": "0.5"}}
    ctl = HPAController(
        hpa(min_r=1, max_r=1000, metrics=[ext], behavior=behavior), downscale_stabilization_s=0
    )
    t = NOW

    def step(replicas, value):
        nonlocal t
        t += 60
        return ctl.reconcile(
            t,
            spec_replicas=replicas,
            status_replicas=replicas,
            pods=[],
            pod_metrics=[],
            custom_metrics={"external": {"m": [value]}},
        )

    assert step(35, "3700").desiredReplicas == 37  # phase 1: +6 % > 5 %
    assert step(37, "3800").desiredReplicas == 37  # phase 2: +3 % within 5 %
    assert step(37, "1000").desiredReplicas == 10  # phase 3: -74 % beyond 50 %
    assert step(10, "800").desiredReplicas == 10  # phase 4: -20 % within 50 %
