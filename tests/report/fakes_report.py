"""Synthetic scenarios and a fake backend for the report tests: nothing is deployed.

The fake backend returns Kubernetes-shaped observations, so `ctx.deploy()` writes the same
evidence files a real backend would (pods/events/hpa_history/resources/nodes.json) through the
real ScenarioContext code, and the scenarios add load.json, faults.json and cold_start.json.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from rich.console import Console

from harness.backends.base import Backend
from harness.backends.observe import (
    Condition,
    ContainerStatus,
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    Event,
    FaultRecord,
    HPAStatusSample,
    Node,
    ObjectMeta,
    ObjectReference,
    Pod,
    ResourceSample,
)
from harness.errors import SetupError
from harness.manifests.bundle import ManifestBundle
from harness.run import evidence
from harness.scenarios.base import ScenarioContext
from harness.verdict import Check, Verdict

T0 = 1_700_000_000.0
MIB = 1024 * 1024

DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: svc}
spec:
  replicas: 2
  selector: {matchLabels: {app: svc}}
  template:
    metadata: {labels: {app: svc}}
    spec:
      containers:
      - name: svc
        image: svc:1
        resources: {limits: {memory: 512Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {selector: {app: svc}, ports: [{port: 80}]}
"""


class FakeBackend(Backend):
    name = "fake"
    limits_enforced = False
    created: list[Path] = []
    torn_down: list[Path] = []

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        FakeBackend.created.append(workdir)

    def deploy(self, bundle: ManifestBundle) -> None:
        self.bundle = bundle

    def wait_ready(self, replicas: int | None = None, timeout_s: float = 300.0) -> DeploymentStatus:
        return self.deployment().status

    def teardown(self) -> None:
        FakeBackend.torn_down.append(self.workdir)

    def service_url(self) -> str:
        return "http://127.0.0.1:9"

    def pod_url(self, pod: str) -> str:
        return "http://127.0.0.1:9"

    def pods(self, include_deleted: bool = False) -> list[Pod]:
        out = []
        for i, zone in enumerate(("zone-a", "zone-b")):
            created = T0 + i
            hist = [
                Condition(type="PodScheduled", status="True", lastTransitionTime=created + 0.1),
                Condition(type="Ready", status="True", lastTransitionTime=created + 6 + i),
            ]
            if i == 1:  # killed by liveness and back
                hist += [
                    Condition(type="Ready", status="False", lastTransitionTime=T0 + 20),
                    Condition(type="Ready", status="True", lastTransitionTime=T0 + 28),
                ]
            out.append(
                Pod(
                    name=f"svc-{i}",
                    zone=zone,
                    nodeName=f"node-{zone}",
                    phase="Running",
                    creationTimestamp=created,
                    startTime=created + 0.2,
                    conditions=hist[-1:],
                    conditionHistory=hist,
                    containerStatuses=[ContainerStatus(name="svc", ready=True, restartCount=i)],
                )
            )
        return out

    def nodes(self) -> list[Node]:
        return [
            Node(name=f"node-{z}", labels={"topology.kubernetes.io/zone": z})
            for z in ("zone-a", "zone-b")
        ]

    def events(self, since: float | None = None) -> list[Event]:
        ref = ObjectReference(kind="Pod", name="svc-1")
        return [
            Event(
                type="Warning",
                reason="Unhealthy",
                message="Liveness probe failed",
                involvedObject=ref,
                firstTimestamp=T0 + 18,
                lastTimestamp=T0 + 19,
                count=3,
                source="kubelet",
            ),
            Event(
                type="Normal",
                reason="Killing",
                message="failed liveness probe",
                involvedObject=ref,
                firstTimestamp=T0 + 20,
                lastTimestamp=T0 + 20,
                source="kubelet",
            ),
        ]

    def deployment(self) -> Deployment:
        return Deployment(
            metadata=ObjectMeta(name="svc"),
            spec=DeploymentSpec(replicas=2),
            status=DeploymentStatus(replicas=2, readyReplicas=2),
        )

    def hpa_history(self) -> list[HPAStatusSample]:
        out = []
        for k in range(0, 60, 5):
            desired = 2 if k < 15 or k > 45 else 6
            ready = 2 if k < 25 or k > 50 else 6
            out.append(
                HPAStatusSample(
                    time=T0 + k,
                    currentReplicas=desired,
                    desiredReplicas=desired,
                    readyReplicas=ready,
                )
            )
        return out

    def resource_samples(self, since: float | None = None) -> list[ResourceSample]:
        return [
            ResourceSample(
                time=T0 + k,
                pod=f"svc-{i}",
                memory_bytes=(200 + 4 * k + 10 * i) * MIB,
                memory_limit_bytes=512 * MIB,
                oom_kills=1 if (i == 1 and k >= 40) else 0,
            )
            for i in range(2)
            for k in range(0, 50, 2)
        ]

    def scale(self, replicas: int) -> None: ...

    def delete_pod(self, pod: str, grace_period_s: float | None = None) -> FaultRecord:
        return FaultRecord(kind="kill-pod", target=pod, started_at=T0, landed=True)

    def zone_outage(self, zone: str) -> FaultRecord:
        return FaultRecord(
            kind="zone-outage",
            target=zone,
            started_at=T0 + 15,
            ended_at=T0 + 30,
            affected=["svc-0"],
            landed=True,
        )

    def restore_zone(self, zone: str) -> FaultRecord:
        return FaultRecord(kind="restore", target=zone, started_at=T0 + 30, landed=True)

    def drain_zone(self, zone: str, timeout_s: float = 60.0) -> FaultRecord:
        return FaultRecord(
            kind="drain",
            target=zone,
            started_at=T0 + 40,
            landed=False,
            detail="PDB blocked the eviction (429)",
        )

    def hang_pod(self, pod: str) -> FaultRecord:
        return FaultRecord(kind="hang", target=pod, started_at=T0 + 18, landed=True)


def quiet() -> Console:
    """A console that prints nothing (the live display is exercised, its output dropped)."""
    return Console(file=io.StringIO(), width=120)


def fake_factory(workdir: Path) -> Backend:
    return FakeBackend(workdir)


def load_json(p90_ms: float = 120.0) -> dict:
    timeline = []
    for s in range(60):
        bump = 3.0 if 15 <= s < 22 else 1.0
        timeline.append(
            {
                "t": s,
                "requests": 10,
                "errors": {"503": 2} if 15 <= s < 18 else 0,
                "latency_ms": {
                    "p50": p90_ms / 2 * bump,
                    "p90": p90_ms * bump,
                    "p99": p90_ms * 1.5 * bump,
                },
            }
        )
    return {
        "started_at": T0,
        "requested_rate": 10,
        "achieved_rate": 9.9,
        "duration_s": 60,
        "requests": 600,
        "errors": {"503": 6},
        "latency_ms": {"p50": p90_ms / 2, "p90": p90_ms},
        "valid": True,
        "timeline": timeline,
    }


def _zone(ctx: ScenarioContext, p90_ms: float, availability: float) -> Verdict:
    with ctx.deploy() as backend:
        fault = backend.zone_outage("zone-a")
        drain = backend.drain_zone("zone-b")
    ev = [
        ctx.write_json(evidence.LOAD, load_json(p90_ms)),
        ctx.write_json(evidence.FAULTS, [fault, drain]),
    ]
    checks = [
        Check(name="latency_p90_ms", measured=p90_ms, target=300.0, ok=p90_ms < 300, unit=" ms"),
        Check(name="availability", measured=availability, target=0.99, ok=availability >= 0.99),
        Check(name="recovery_s", measured=12.0, target=30.0, ok=True, unit=" s"),
    ]
    return Verdict.from_checks(
        "zone-failure",
        ctx.profile.name,
        checks,
        evidence=ev,
        caveats=["limits monitored, not enforced"],
    )


def zone_pass(ctx: ScenarioContext) -> Verdict:
    return _zone(ctx, ctx.measured.get("p90_ms", 120.0), 0.995)


def zone_fail(ctx: ScenarioContext) -> Verdict:
    return _zone(ctx, 450.0, 0.95)


def cold_start_pass(ctx: ScenarioContext) -> Verdict:
    with ctx.deploy():
        pass
    starts = [
        {
            "pod": f"svc-{i}",
            "phases": {"imports": 1.5 + i, "weights": 2.0, "warmup": 0.5},
            "total_s": 4.0 + i,
        }
        for i in range(3)
    ]
    ev = ctx.write_json(evidence.COLD_START, {"starts": starts})
    ctx.measured["cold_start_p95_s"] = 6.0
    ctx.log("3 cold starts measured")
    checks = [Check(name="cold_start_p95_s", measured=6.0, target=20.0, ok=True, unit=" s")]
    return Verdict.from_checks("cold-start", ctx.profile.name, checks, evidence=[ev])


def skip(ctx: ScenarioContext) -> Verdict:
    return Verdict(
        name="oom-headroom",
        status="skip",
        reason="no cgroup memory controller",
        profile=ctx.profile.name,
    )


def unobserved(ctx: ScenarioContext) -> Verdict:
    """Every check met but one that the run could not observe."""
    checks = [
        Check(name="peak_memory_mib", measured=300, target="<= 600", ok=True),
        Check(
            name="oom_kills",
            measured=0,
            target=0,
            ok=True,
            inconclusive=True,
            note="limits monitored, not enforced",
        ),
    ]
    return Verdict.from_checks("oom-headroom", ctx.profile.name, checks)


def error(ctx: ScenarioContext) -> Verdict:
    raise RuntimeError("backend exploded")


def setup_missing(ctx: ScenarioContext) -> Verdict:
    raise SetupError("docker is not installed (install docker.io)")


def interrupt(ctx: ScenarioContext) -> Verdict:
    with ctx.deploy():
        raise KeyboardInterrupt


def nan_measurement(ctx: ScenarioContext) -> Verdict:
    return Verdict(
        name="hpa",
        status="pass",
        reason="ok",
        profile=ctx.profile.name,
        measurements={"breach_s": math.nan, "obj": object(), "nested": {"p90": 1.0}},
    )
