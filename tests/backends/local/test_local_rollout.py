"""Rolling updates / Recreate / rollout_restart on the LocalBackend, measured from the outside:
a sampler thread snapshots pods() (and the Service sees real traffic) while the rollout runs."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from standin_specs import bundle, deployment

from harness.backends.local import LocalBackend
from harness.backends.observe import DeploymentStatus, Pod

pytestmark = pytest.mark.timeout(120)
HASH = "pod-template-hash"


def rolling(replicas: int, surge: int | str, unavailable: int | str, **kw: Any) -> dict[str, Any]:
    dep = deployment(replicas=replicas, **kw)
    dep["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }
    return dep


def pre_stop_sleep(dep: dict[str, Any], seconds: int) -> dict[str, Any]:
    """Terminating pods take `seconds` to go (and finish in-flight requests).

    Like a real preStop.
    """
    dep["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"sleep": {"seconds": seconds}}
    }
    return dep


class Sampler:
    """Snapshots of pods() and deployment_status() every `period_s`, in a background thread."""

    def __init__(self, b: LocalBackend, period_s: float = 0.02) -> None:
        self.b = b
        self.period_s = period_s
        self.pods: list[list[Pod]] = []
        self.status: list[DeploymentStatus] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.pods.append(self.b.pods())
            self.status.append(self.b.deployment_status())
            self._stop.wait(self.period_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def counts(self) -> list[tuple[int, int]]:
        """(non-terminating pods, Ready non-terminating pods) per sample."""
        out = []
        for snap in self.pods:
            active = [p for p in snap if p.deletionTimestamp is None]
            out.append((len(active), sum(1 for p in active if p.ready)))
        return out


def hashes(pods: list[Pod]) -> set[str]:
    return {p.labels[HASH] for p in pods}


def _reason(st: DeploymentStatus, type_: str) -> str | None:
    c = st.condition(type_)
    return c.reason if c is not None else None


def scaling_messages(b: LocalBackend) -> list[str]:
    return [e.message for e in b.events() if e.reason == "ScalingReplicaSet"]


def test_rolling_update_surge_one_never_drops_below_spec(tmp_path: Path) -> None:
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(rolling(3, 1, 0)))
        b.wait_ready(timeout_s=60)
        before = b.pods()
        (old,) = hashes(before)
        with Sampler(b) as s:
            rec = b.rollout_restart(timeout_s=60)
        assert rec.landed and rec.kind == "rollout-restart", rec.detail
        counts = s.counts()
        assert len(counts) > 20
        assert max(active for active, _ in counts) == 4  # the surge was used, never exceeded
        assert min(ready for _, ready in counts) >= 3  # maxUnavailable 0, measured
        mixed = [
            snap
            for snap in s.pods
            if len(hashes([p for p in snap if p.deletionTimestamp is None])) == 2
        ]
        assert mixed, "the sampler never saw old and new pods side by side"
        after = b.pods()
        (new,) = hashes(after)
        assert new != old and len(after) == 3 and all(p.ready for p in after)
        assert not {p.name for p in before} & {p.name for p in after}
        gone = [p for p in b.pods(include_deleted=True) if p.labels[HASH] == old]
        assert len(gone) == 3 and all(p.deletionTimestamp is not None for p in gone)
        st = b.deployment_status()
        assert (st.replicas, st.updatedReplicas, st.availableReplicas) == (3, 3, 3)
        assert (
            _reason(st, "Progressing") == "NewReplicaSetAvailable"
            and _reason(st, "Available") == "MinimumReplicasAvailable"
        )
        seen = {_reason(x, "Progressing") for x in s.status}
        assert {"NewReplicaSetCreated", "ReplicaSetUpdated"} <= seen, seen
        msgs = scaling_messages(b)
        assert f"Scaled up replica set standin-{new} to 1" in msgs
        assert f"Scaled up replica set standin-{new} to 3" in msgs
        assert f"Scaled down replica set standin-{old} to 2" in msgs
        assert f"Scaled down replica set standin-{old} to 0" in msgs
        assert "max surge 1, max unavailable 0" in rec.detail
        assert sorted(rec.affected) == sorted(p.name for p in before)


def test_rolling_update_no_surge_uses_the_unavailability_budget(tmp_path: Path) -> None:
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(rolling(3, 0, 1)))
        b.wait_ready(timeout_s=60)
        (old,) = hashes(b.pods())
        with Sampler(b) as s:
            rec = b.rollout_restart(timeout_s=60)
        assert rec.landed, rec.detail
        counts = s.counts()
        assert max(active for active, _ in counts) <= 3  # maxSurge 0
        assert min(ready for _, ready in counts) == 2  # one at a time, never two
        after = b.pods()
        assert len(after) == 3 and hashes(after) != {old} and len(hashes(after)) == 1


def test_recreate_creates_nothing_before_every_old_pod_terminated(tmp_path: Path) -> None:
    dep = pre_stop_sleep(deployment(replicas=2), 1)  # old pods stay terminating for >= 1 s
    dep["spec"]["strategy"] = {"type": "Recreate"}
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(dep))
        b.wait_ready(timeout_s=60)
        (old,) = hashes(b.pods())
        with Sampler(b) as s:
            rec = b.rollout_restart(timeout_s=60)
        assert rec.landed, rec.detail
        # terminating pods included: no snapshot holds an old and a new pod together
        assert not [snap for snap in s.pods if len(hashes(snap)) == 2]
        assert any(
            any(p.deletionTimestamp is not None for p in snap) for snap in s.pods
        )  # saw them terminate
        everything = b.pods(include_deleted=True)
        old_pods = [p for p in everything if p.labels[HASH] == old]
        new_pods = [p for p in everything if p.labels[HASH] != old]
        finished = [p.containerStatuses[0].state.terminated for p in old_pods]
        assert len(old_pods) == 2 and all(t is not None for t in finished)
        first_new = min(p.creationTimestamp for p in new_pods)
        assert max(t.finishedAt for t in finished if t is not None) <= first_new
        msgs = scaling_messages(b)
        assert f"Scaled down replica set standin-{old} to 0" in msgs
        new = next(iter(hashes(new_pods)))
        assert f"Scaled up replica set standin-{new} to 2" in msgs


def test_service_loses_no_request_during_a_max_unavailable_zero_rollout(tmp_path: Path) -> None:
    dep = pre_stop_sleep(rolling(2, 1, 0), 1)
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(dep))
        b.wait_ready(timeout_s=60)
        old_names = {p.name for p in b.pods()}
        codes: list[int] = []
        served_by: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=b.service_url(), timeout=10) as client:
                while not stop.is_set() and len(codes) < 400:
                    r = client.get("/work")
                    codes.append(r.status_code)
                    served_by.append(r.headers.get("x-gauntlet-pod", ""))
                    time.sleep(0.01)

        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        try:
            rec = b.rollout_restart(timeout_s=60)
        finally:
            stop.set()
            t.join(15)
        assert rec.landed, rec.detail
        new_names = {p.name for p in b.pods()}
        assert len(codes) >= 30
        assert codes.count(200) == len(codes), {c: codes.count(c) for c in set(codes)}
        assert (
            set(served_by) & old_names and set(served_by) & new_names
        )  # traffic spanned the rollout


def test_scale_during_rollout_is_proportional_across_replica_sets(tmp_path: Path) -> None:
    dep = rolling(2, 1, 0)
    dep["spec"]["minReadySeconds"] = 1
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(dep))
        b.wait_ready(timeout_s=60)
        (old,) = hashes(b.pods())
        result: list[Any] = []
        t = threading.Thread(
            target=lambda: result.append(b.rollout_restart(timeout_s=90)), daemon=True
        )
        with Sampler(b) as s:
            t.start()
            b.wait_until(lambda: len(hashes(b.pods())) == 2, 30, what="a new pod")
            b.scale(4)  # what the HPA does mid-rollout
            t.join(100)
        assert result and result[0].landed, result and result[0].detail
        after = b.pods()
        assert len(after) == 4 and len(hashes(after)) == 1 and hashes(after) != {old}
        assert b.deployment_status().updatedReplicas == 4
        assert max(active for active, _ in s.counts()) <= 5  # 4 + maxSurge 1
        # the scaling event grew both sets in proportion (sync.go scale()): 2 old + 1 new at
        # 2 -> 4 replicas (max 3 -> 5) became 3 old + 2 new, then the rollout went on
        msgs = scaling_messages(b)
        assert f"Scaled up replica set standin-{old} to 3" in msgs, msgs
        # minReadySeconds: a pod is Ready for a while before it counts as available
        assert any(st.readyReplicas > st.availableReplicas for st in s.status)


def test_stalled_rollout_exceeds_its_progress_deadline(tmp_path: Path) -> None:
    """A new template whose pods never get Ready: Progressing turns False
    (ProgressDeadlineExceeded) after progressDeadlineSeconds without progress, the old pods keep
    serving (maxUnavailable 0), and a rollout waits no longer than that deadline."""
    dep = rolling(2, 1, 0)
    dep["spec"]["progressDeadlineSeconds"] = 3
    with LocalBackend(tmp_path, probe_jitter=False, backoff_scale=0.05) as b:
        b.deploy(bundle(dep))
        b.wait_ready(timeout_s=60)
        b.wait_until(
            lambda: _reason(b.deployment_status(), "Progressing") == "NewReplicaSetAvailable",
            10,
            what="first rollout complete",
        )

        def broken(d: dict[str, Any]) -> None:
            d["spec"]["template"]["spec"]["containers"][0]["command"] = [
                sys.executable,
                "-c",
                "raise SystemExit(1)",
            ]

        new_hash = b.update_template(broken)
        b.wait_until(
            lambda: _reason(b.deployment_status(), "Progressing") == "ProgressDeadlineExceeded",
            30,
            what="the progress deadline",
        )
        st = b.deployment_status()
        prog = st.condition("Progressing")
        assert prog is not None and prog.status == "False" and f"standin-{new_hash}" in prog.message
        assert (
            prog.lastUpdateTime is not None
            and prog.lastUpdateTime - prog.lastTransitionTime <= 0.01
        )
        assert _reason(st, "Available") == "MinimumReplicasAvailable" and st.readyReplicas == 2
        assert st.updatedReplicas == 1  # the surge pod, crash-looping; no old pod was taken down
        t0 = time.monotonic()
        rec = b.rollout_restart(timeout_s=60)
        assert not rec.landed and "ProgressDeadlineExceeded" in rec.detail, rec.detail
        assert time.monotonic() - t0 < 30  # ended by the 3 s deadline, not by the 60 s timeout
