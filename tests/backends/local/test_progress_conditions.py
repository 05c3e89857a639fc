"""The Deployment's Available / Progressing conditions.

Pure: pkg/controller/deployment progress.go.
"""

from __future__ import annotations

from harness.backends.local.controllers import deployment_conditions as progress
from harness.backends.local.controllers.deployment_conditions import Counts


def test_available_follows_max_unavailable() -> None:
    c = progress.available(None, 4, 1, 3, now=10.0)
    assert (c.status, c.reason) == ("True", "MinimumReplicasAvailable")
    same = progress.available(c, 4, 1, 4, now=20.0)
    assert same is c  # same status and reason: not rewritten
    down = progress.available(c, 4, 1, 2, now=30.0)
    assert (down.status, down.reason, down.lastTransitionTime) == (
        "False",
        "MinimumReplicasUnavailable",
        30.0,
    )


def test_progress_moves_last_update_and_keeps_transition() -> None:
    created = progress.new_replicaset_created(None, "web-abc", now=0.0)
    assert (created.status, created.reason) == ("True", progress.NEW_RS_CREATED)
    before, after = Counts(3, 0, 3, 3), Counts(4, 1, 3, 3)  # one new pod
    c = progress.progressing(created, "web-abc", 3, before, after, deadline_s=5, now=2.0)
    assert c is not None and c.reason == progress.RS_UPDATED
    assert c.lastTransitionTime == 0.0 and c.lastUpdateTime == 2.0
    c2 = progress.progressing(c, "web-abc", 3, after, Counts(4, 1, 4, 4), deadline_s=5, now=4.0)
    assert c2 is not None and c2.lastUpdateTime == 4.0 and c2.lastTransitionTime == 0.0


def test_no_progress_past_the_deadline_times_out_and_stays_out() -> None:
    c = progress.new_replicaset_created(None, "web-abc", now=0.0)
    stuck = Counts(4, 1, 3, 3)
    assert (
        progress.progressing(c, "web-abc", 3, stuck, stuck, deadline_s=5, now=5.0) is c
    )  # not yet (>)
    out = progress.progressing(c, "web-abc", 3, stuck, stuck, deadline_s=5, now=5.5)
    assert out is not None and (out.status, out.reason) == ("False", progress.TIMED_OUT)
    assert "has timed out progressing" in out.message
    # a timed-out condition stays until progress is made again
    again = progress.progressing(out, "web-abc", 3, stuck, stuck, deadline_s=5, now=60.0)
    assert again is out
    moved = progress.progressing(
        out, "web-abc", 3, stuck, Counts(4, 2, 3, 3), deadline_s=5, now=61.0
    )
    assert moved is not None and (moved.status, moved.reason, moved.lastTransitionTime) == (
        "True",
        progress.RS_UPDATED,
        61.0,
    )


def test_complete_rollout_is_new_replicaset_available_and_never_times_out() -> None:
    c = progress.new_replicaset_created(None, "web-abc", now=0.0)
    done = progress.progressing(
        c, "web-abc", 3, Counts(4, 3, 3, 2), Counts(3, 3, 3, 3), deadline_s=5, now=3.0
    )
    assert done is not None and (done.status, done.reason) == ("True", progress.NEW_RS_AVAILABLE)
    # later crashes of a complete Deployment are not a stalled rollout
    assert (
        progress.progressing(
            done, "web-abc", 3, Counts(3, 3, 3, 3), Counts(3, 3, 1, 1), 5, now=600.0
        )
        is done
    )
    assert not progress.timed_out(done, 5, now=600.0)
