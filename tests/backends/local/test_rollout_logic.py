"""The Deployment controller's rollout arithmetic (controllers/deployment_rollout.py), pure."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.backends.base import RolloutWatch
from harness.backends.local.controllers import deployment_rollout as rollout
from harness.backends.local.controllers.deployment_rollout import (
    RECREATE,
    ROLLING_UPDATE,
    ReplicaSetState,
    Strategy,
    is_available,
    max_unavailable,
    new_replicas_rolling,
    plan,
    scale_down_old,
)


def rs(
    name: str, replicas: int, available: int | None = None, created: float = 0.0
) -> ReplicaSetState:
    return ReplicaSetState(name, replicas, replicas if available is None else available, created)


def rolling(replicas: int, surge: int, unavailable: int) -> Strategy:
    return Strategy(ROLLING_UPDATE, replicas, surge, unavailable)


def test_surge_first_step_creates_one_new_pod_and_keeps_old() -> None:
    s = rolling(3, 1, 0)
    assert plan(s, rs("new", 0), [rs("old", 3)], True) == {"new": 1}
    # the surge pod is not available yet: nothing may go (3 - 3 - 1 <= 0)
    assert plan(s, rs("new", 1, 0), [rs("old", 3)], True) == {}
    # it is available: exactly one old pod may go
    assert plan(s, rs("new", 1, 1), [rs("old", 3)], True) == {"old": 2}


def test_no_surge_scales_old_down_first() -> None:
    s = rolling(3, 0, 1)
    assert plan(s, rs("new", 0), [rs("old", 3)], True) == {"old": 2}
    assert plan(s, rs("new", 0), [rs("old", 2)], True) == {"new": 1}
    assert plan(s, rs("new", 1, 0), [rs("old", 2)], True) == {}  # 2 available = minAvailable


def test_unhealthy_old_pods_are_cleaned_up_before_available_ones() -> None:
    s = rolling(3, 0, 1)
    # only 1 of 3 old pods is available (below minAvailable 2): the cleanup still removes an
    # unavailable one, the availability budget removes none
    assert scale_down_old(s, rs("new", 0), [rs("old", 3, 1)]) == {"old": 2}
    # maxScaledDown 2 goes to the two unavailable pods; the available one stays (minAvailable 1)
    s2 = rolling(3, 0, 2)
    assert scale_down_old(s2, rs("new", 0), [rs("old", 3, 1)]) == {"old": 1}


def test_old_sets_scale_down_oldest_first() -> None:
    s = rolling(4, 0, 2)
    olds = [rs("b", 2, created=2.0), rs("a", 2, created=1.0)]
    assert scale_down_old(s, rs("new", 0), olds) == {"a": 0}


def test_new_set_above_spec_is_scaled_down_at_once() -> None:
    assert plan(rolling(2, 1, 0), rs("new", 5), [], False) == {"new": 2}
    assert plan(Strategy(RECREATE, 2, 0, 0), rs("new", 5), [], False) == {"new": 2}


def test_steady_state_scale_up_is_immediate() -> None:
    assert plan(rolling(6, 1, 0), rs("new", 2), [], False) == {"new": 6}
    assert new_replicas_rolling(rolling(6, 1, 0), rs("new", 2), [rs("old", 0)]) == 6


def test_recreate_waits_for_old_pods_to_terminate() -> None:
    s = Strategy(RECREATE, 3, 0, 0)
    assert plan(s, rs("new", 0), [rs("old", 3), rs("older", 0)], True) == {"old": 0}
    assert plan(s, rs("new", 0), [rs("old", 0)], True) == {}  # terminating old pods still there
    assert plan(s, rs("new", 0), [rs("old", 0)], False) == {"new": 3}
    assert plan(s, rs("new", 3), [rs("old", 0)], False) == {}


def test_max_unavailable_clamps() -> None:
    assert max_unavailable(rolling(2, 0, 5)) == 2
    assert max_unavailable(rolling(0, 1, 1)) == 0
    assert max_unavailable(Strategy(RECREATE, 3, 0, 1)) == 0


def test_is_available_honours_min_ready_seconds() -> None:
    assert is_available(True, None, 0, 100.0)
    assert not is_available(False, 99.0, 0, 100.0)
    assert not is_available(True, 98.0, 5, 100.0)
    assert is_available(True, 94.0, 5, 100.0)
    assert not is_available(True, None, 5, 100.0)


def test_rollout_watch_extremes() -> None:
    w = RolloutWatch()
    for active, available in ((3, 3), (4, 3), (4, 4), (3, 2), (3, 3)):
        w.observe(3, active, available)
    assert (w.max_surge, w.max_unavailable, w.samples) == (1, 1, 5)
    assert "max surge 1" in w.summary() and "max unavailable 1" in w.summary()


@dataclass
class SimPod:
    rs: str
    age: int = 0
    deleting: int = -1  # ticks left until gone; -1 = not deleting


def _simulate(
    s: Strategy, ready_after: int = 2, grace_ticks: int = 2
) -> list[tuple[int, int, bool]]:
    """Controllers in lock-step.

    Plan, ReplicaSets match sizes (not-ready, newest first), pods age.
    """
    sizes = {"old": s.replicas, "new": 0}
    pods = [SimPod("old", age=99) for _ in range(s.replicas)]
    seen: list[tuple[int, int, bool]] = []
    for _ in range(200):
        active = [p for p in pods if p.deleting < 0]
        avail = {k: sum(1 for p in active if p.rs == k and p.age >= ready_after) for k in sizes}
        running_old = any(p.rs == "old" for p in pods)
        changes = plan(
            s,
            ReplicaSetState("new", sizes["new"], avail["new"], 2.0),
            [ReplicaSetState("old", sizes["old"], avail["old"], 1.0)],
            running_old,
        )
        sizes.update(changes)
        for k, size in sizes.items():
            mine = [p for p in active if p.rs == k]
            for _ in range(size - len(mine)):
                pods.append(SimPod(k))
            for p in sorted(mine, key=lambda p: (p.age >= ready_after, -p.age))[
                : max(0, len(mine) - size)
            ]:
                p.deleting = grace_ticks
        for p in pods:
            p.age += 1
            if p.deleting > 0:
                p.deleting -= 1
        pods = [p for p in pods if p.deleting != 0]
        active = [p for p in pods if p.deleting < 0]
        mixed = {p.rs for p in pods} == {"old", "new"}  # terminating pods included
        seen.append((len(active), sum(1 for p in active if p.age >= ready_after), mixed))
        if (
            not any(p.rs == "old" for p in pods)
            and sum(1 for p in active if p.age >= ready_after) == s.replicas
        ):
            return seen
    raise AssertionError(f"rollout did not finish: {sizes}, {pods}")


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable"), [(3, 1, 0), (3, 0, 1), (4, 2, 1), (5, 2, 0), (1, 0, 1)]
)
def test_rolling_update_bounds_hold_through_a_whole_rollout(
    replicas: int, surge: int, unavailable: int
) -> None:
    seen = _simulate(rolling(replicas, surge, unavailable))
    assert max(active for active, _, _ in seen) <= replicas + surge
    assert min(available for _, available, _ in seen) >= replicas - unavailable
    assert seen[-1][:2] == (replicas, replicas)


def test_recreate_simulation_never_mixes_templates() -> None:
    seen = _simulate(Strategy(RECREATE, 3, 0, 0))
    assert not any(mixed for _, _, mixed in seen)  # no new pod while an old one still terminates
    assert min(active for active, _, _ in seen) == 0
    assert seen[-1][:2] == (3, 3)


def test_scaling_event_is_an_active_set_sized_for_another_count() -> None:
    assert rollout.is_scaling_event({"new": 1, "old": 2}, {"new": 2, "old": 2}, 4)
    assert not rollout.is_scaling_event({"new": 1, "old": 2}, {"new": 2, "old": 2}, 2)
    assert not rollout.is_scaling_event(
        {"new": 0, "old": 3}, {"new": 5, "old": 3}, 3
    )  # inactive sets do not count


def test_proportional_scale_up_mid_rollout() -> None:
    """2 -> 4 replicas with maxSurge 1 while 2 old + 1 new run: 3 old + 2 new (5 = 4 + surge)."""
    s = rollout.Strategy(rollout.ROLLING_UPDATE, 4, 1, 0)
    new, old = rollout.ReplicaSetState("new", 1, 0, 2.0), rollout.ReplicaSetState("old", 2, 2, 1.0)
    assert rollout.scale(s, new, [old], {"new": 3, "old": 3}, 3, new_saturated=False) == {
        "old": 3,
        "new": 2,
    }


def test_proportional_scale_down_mid_rollout_takes_from_the_larger_older_first() -> None:
    s = rollout.Strategy(rollout.ROLLING_UPDATE, 2, 1, 0)
    new, old = rollout.ReplicaSetState("new", 2, 0, 2.0), rollout.ReplicaSetState("old", 3, 3, 1.0)
    # 6 replicas (max 7) -> 2 (max 3): 5 running, 2 to remove, all from the larger (old) set:
    # round(3 * 3 / 7) = 1 of it stays; the new set keeps its 2
    assert rollout.scale(s, new, [old], {"new": 7, "old": 7}, 5, new_saturated=False) == {"old": 1}


def test_scale_with_one_active_set_or_a_saturated_new_one() -> None:
    s = rollout.Strategy(rollout.ROLLING_UPDATE, 5, 1, 0)
    only = rollout.ReplicaSetState("new", 3, 3, 2.0)
    assert rollout.scale(s, only, [rollout.ReplicaSetState("old", 0, 0, 1.0)], {}, 3, False) == {
        "new": 5
    }
    sat = rollout.ReplicaSetState("new", 5, 5, 2.0)
    assert rollout.scale(s, sat, [rollout.ReplicaSetState("old", 1, 1, 1.0)], {}, 6, True) == {
        "old": 0
    }
    recreate = rollout.Strategy(rollout.RECREATE, 5, 0, 0)
    two = [rollout.ReplicaSetState("old", 1, 1, 1.0)]
    assert (
        rollout.scale(recreate, rollout.ReplicaSetState("new", 1, 0, 2.0), two, {}, 2, False) == {}
    )
