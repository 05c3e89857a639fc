"""LocalBackend: the rendered manifests run on this machine, as a small cluster.

This facade only wires the pieces and answers the Backend interface: the shared state
(cluster/), one controller per file (controllers/), the kubelet (kubelet/) and the Service
proxy. See docs/local-backend.md for which file plays which Kubernetes component.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, BackendError, RolloutRestarter
from harness.backends.local import assets, cleanup
from harness.backends.local.cluster.ipam import LoopbackIPAM
from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers.controller_manager import ControllerManager
from harness.backends.local.controllers.deployment_controller import DeploymentController
from harness.backends.local.controllers.disruption_controller import (
    DisruptionController,
    check_budget,
)
from harness.backends.local.controllers.endpoints_controller import EndpointsController
from harness.backends.local.controllers.hpa_controller import HorizontalPodAutoscalerController
from harness.backends.local.controllers.metrics_controller import MetricsController
from harness.backends.local.controllers.node_lifecycle_controller import NodeLifecycleController
from harness.backends.local.controllers.replicaset_controller import ReplicaSetController
from harness.backends.local.controllers.scheduler_controller import (
    SchedulerController,
    make_nodes,
    resolve_allocatable,
)
from harness.backends.local.kubelet import cgroups, volumes
from harness.backends.local.kubelet.container_starter import ContainerStarter, limits_policy
from harness.backends.local.kubelet.pod_workers import PodWorkers
from harness.backends.local.kubelet.prober import ProbeRecord
from harness.backends.local.podspec.pod_template import parse_template
from harness.backends.local.podspec.rollout_strategy import parse_rollout
from harness.backends.local.service_proxy import ServiceProxy
from harness.backends.observe import (
    Deployment,
    DeploymentStatus,
    Event,
    FaultKind,
    FaultRecord,
    HPAStatusSample,
    Node,
    Pod,
    ResourceSample,
)
from harness.backends.signal_cleanup import CLEANUP
from harness.errors import InputError
from harness.manifests.bundle import ManifestBundle

DeploymentChange = Callable[[dict[str, Any]], dict[str, Any] | None] | dict[str, Any]


class LocalBackend(Backend, RolloutRestarter):
    """Replicas as real processes (or Docker containers) on simulated zoned nodes.

    Deviation from a cluster, on purpose: pods on a node made unreachable by `zone_outage`
    are deleted after `eviction_delay_s` (default 0, as if tolerationSeconds had expired), not
    after the 300 s default toleration; the replacements then schedule as the scheduler would.
    """

    name = "local"

    def __init__(
        self,
        workdir: Path,
        *,
        runtime: str = "process",
        zones: list[str] | None = None,
        nodes_per_zone: int = 1,
        node_allocatable: dict[str, Any] | None = None,
        enforce_limits: bool | None = None,
        hpa_sync_period_s: float = 15.0,
        hpa_options: dict[str, Any] | None = None,
        probe_jitter: bool = True,
        run_id: str | None = None,
        backoff_scale: float = 1.0,
        eviction_delay_s: float = 0.0,
        sample_period_s: float = 1.0,
        metric_resolution_s: float = 15.0,
        namespace: str = "default",
    ) -> None:
        super().__init__(Path(workdir))
        self.limits_enforced, self.limits_reason = limits_policy(runtime, enforce_limits)
        self.runtime = runtime
        self.namespace = namespace
        self.zones = list(zones or ["zone-a", "zone-b", "zone-c"])
        self.hpa_sync_period_s = hpa_sync_period_s
        self.hpa_options = dict(hpa_options or {})
        self.metric_resolution_s = metric_resolution_s
        self.run = cleanup.run_name(run_id or uuid.uuid4().hex[:8])
        self.ledger = cleanup.Ledger(self.run)
        s = self.state = ClusterState(namespace, make_nodes(self.zones, nodes_per_zone))
        self.ipam = LoopbackIPAM()
        self.starter = ContainerStarter(
            s, runtime, self.run, self.ledger, self.workdir, self.limits_enforced
        )
        self.endpoints = EndpointsController(s)
        self.pod_workers = PodWorkers(
            s,
            self.starter.start,
            self.run,
            jitter=probe_jitter,
            backoff_scale=backoff_scale,
            on_change=self._on_pod_change,
        )
        self.deployments = DeploymentController(s)
        self.replicasets = ReplicaSetController(s, self.pod_workers.delete)
        self.scheduler = SchedulerController(
            s, resolve_allocatable(node_allocatable), self._allocate_ip, self.pod_workers.start
        )
        self.disruption = DisruptionController(s, self.pod_workers.delete)
        self.node_lifecycle = NodeLifecycleController(
            s, self.zones, self.disruption, self.pod_workers.kill_now, eviction_delay_s
        )
        self.metrics = MetricsController(
            s,
            self.run,
            period_s=sample_period_s,
            pod_cgroups=self.starter.pod_cgroups,
            limits_enforced=self.limits_enforced,
            limits_reason=self.limits_reason,
        )
        self.manager = ControllerManager(
            s, self.pod_workers, self.deployments, self.replicasets, self.scheduler, self.endpoints
        )
        self._proxy: ServiceProxy | None = None
        self._threads: list[threading.Thread] = []
        CLEANUP.register(id(self), self.teardown)

    # lifecycle ---------------------------------------------------------------------------------
    def deploy(self, bundle: ManifestBundle) -> None:
        s, d = self.state, self.state.deployment
        if s.bundle is not None:
            raise BackendError("this LocalBackend already has a deployment; make a new one")
        manifest = copy.deepcopy(bundle.deployment)
        template = parse_template(manifest, bundle.source)
        rollout = parse_rollout(manifest, bundle.source)
        self.starter.check_runnable(template, bundle)
        check_budget(bundle.pdb, bundle.source)
        s.bundle = bundle
        d.name = (manifest.get("metadata") or {}).get("name", d.name)
        h = self.deployments.template_hash(manifest)
        with s.lock:
            d.manifest, d.template_hash, d.rollout = manifest, h, rollout
            d.templates[h] = template
        self.starter.warn_unreproduced(template)
        prepared = assets.ensure_model(manifest)
        if prepared:
            s.events.record("Deployment", d.name, "ModelPrepared", prepared, source="gauntlet")
        for pulled in self.starter.pull_images(template):  # not part of any cold start
            s.events.record("Deployment", d.name, "Pulled", pulled, source="gauntlet")
        with s.lock:
            d.spec_replicas = rollout.replicas
        service_ip, service_port = (
            self.ipam.service_ip,
            self.endpoints.resolve_service(bundle.service, template.main),
        )
        self._proxy = ServiceProxy(lambda: s.endpoints, host=service_ip, port=service_port)
        try:
            self._proxy.start()
        except OSError:  # the Service's port is taken on this machine: any port will do
            self._proxy = ServiceProxy(lambda: s.endpoints, host=service_ip, port=0)
            self._proxy.start()
        loops: list[tuple[Callable[[], None], str]] = [
            (self.manager.run, "deployment-controller"),
            (self.metrics.run, "sampler"),
        ]
        if bundle.hpa is not None:
            hpa = bundle.hpa
            loops.append((lambda: self._hpa(hpa).run(), "hpa"))
        for target, name in loops:
            t = threading.Thread(target=target, name=f"gauntlet-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        s.wake.set()

    def _hpa(self, hpa: dict[str, Any]) -> HorizontalPodAutoscalerController:
        """Built in its loop's thread: an HPA the model refuses stops that loop only."""
        return HorizontalPodAutoscalerController(
            self.state,
            hpa,
            period_s=self.hpa_sync_period_s,
            metric_resolution_s=self.metric_resolution_s,
            options=self.hpa_options,
            scale=self.scale,
            ready_replicas=lambda: self.deployment_status().readyReplicas,
            metrics_port=lambda: self.state.deployment.template.main.ports.get(
                "metrics", self.endpoints.target_port
            ),
        )

    def _allocate_ip(self) -> str:
        s = self.state
        ports = list(s.deployment.template.main.ports.values()) or [self.endpoints.target_port]
        return self.ipam.allocate(
            {q.pod_ip for q in s.pods.values() if q.pod_ip and not q.finished}, ports
        )

    def _on_pod_change(self) -> None:
        """A kubelet changed a pod: update endpoints now, and let the controllers react."""
        self.endpoints.sync()
        self.state.wake.set()

    def update_template(self, change: DeploymentChange) -> str:
        """Change the Deployment like `kubectl apply`/`patch`: a new pod template starts a rollout.

        `change` is a whole new Deployment dict, or a function given a copy of the current one
        (it edits it in place or returns the new one). The pod template, spec.strategy and
        minReadySeconds are taken from it; spec.replicas is not (that is `scale()`'s, as the HPA
        owns it). Going back to an earlier template scales its ReplicaSet up again, like a
        rollback. Returns the pod-template-hash now current.
        """
        bundle = self.state.bundle
        if bundle is None:
            raise BackendError("deploy() first")
        with self.state.lock:
            current = copy.deepcopy(self.state.deployment.manifest)
        if callable(change):
            changed = change(current)
            new = current if changed is None else changed
        else:
            new = copy.deepcopy(change)
        template = parse_template(new, bundle.source)
        parse_rollout(new, bundle.source)  # refuse a bad strategy before anything changes
        self.starter.check_runnable(template, bundle)
        return self.deployments.apply(new, template)

    def wait_ready(self, replicas: int | None = None, timeout_s: float = 300.0) -> DeploymentStatus:
        want = self.state.deployment.spec_replicas if replicas is None else replicas
        self.wait_until(
            lambda: self.deployment_status().readyReplicas >= want,
            timeout_s,
            what=f"{want} ready replicas ({self._describe()})",
        )
        return self.deployment_status()

    def _describe(self) -> str:
        return "; ".join(
            f"{p.name}: {p.phase} ready={p.ready} restarts={p.restart_count}"
            for p in list(self.state.pods.values())
        )

    def teardown(self) -> None:
        s = self.state
        with s.lock:
            if s.closed:
                return
            s.closed = True
        s.stop.set()
        s.wake.set()
        workers = self.pod_workers.kill_all()
        if self._proxy is not None:
            self._proxy.stop()
        for w in workers:
            w.thread.join(10)
        if self.starter.pod_cgroups:
            cgroups.remove_run(self.run)
        for pid, ticks in list(self.ledger.pids.items()):
            cleanup.kill_pid_checked(pid, ticks)
        cleanup.docker_rm(sorted(self.ledger.containers))
        volumes.remove_run(self.run)
        self.ledger.remove()
        CLEANUP.unregister(id(self))

    # traffic -------------------------------------------------------------------------------------
    def service_url(self) -> str:
        if self._proxy is None:
            raise BackendError("deploy() first")
        return self._proxy.url

    def pod_log(self, pod: str) -> str:
        try:
            return (self.workdir / "logs" / f"{pod}.log").read_text(errors="replace")
        except OSError:
            return ""

    def pod_url(self, pod: str) -> str:
        p = self.state.find_pod(pod)
        if p is None or p.pod_ip is None:
            raise BackendError(f"no pod {pod!r} with an IP")
        return f"http://{p.pod_ip}:{self.endpoints.target_port}"

    def requests_by_pod(self) -> dict[str, int]:
        return dict(self._proxy.requests_by_pod) if self._proxy else {}

    # observation ------------------------------------------------------------------------------
    def pods(self, include_deleted: bool = False) -> list[Pod]:
        s = self.state
        with s.lock:
            return [
                p.to_observed() for p in [*s.pods.values(), *(s.gone if include_deleted else [])]
            ]

    def nodes(self) -> list[Node]:
        with self.state.lock:
            return [n.model_copy(deep=True) for n in self.state.nodes]

    def events(self, since: float | None = None) -> list[Event]:
        return self.state.events.list(since)

    def deployment(self) -> Deployment:
        return self.deployments.observed()

    def hpa_history(self) -> list[HPAStatusSample]:
        with self.state.lock:
            return list(self.state.hpa_history)

    def resource_samples(self, since: float | None = None) -> list[ResourceSample]:
        with self.state.lock:
            return [x for x in self.state.samples if since is None or x.time >= since]

    def probe_timeline(self) -> list[ProbeRecord]:
        return list(self.state.probe_log)

    # actions ----------------------------------------------------------------------------------
    def scale(self, replicas: int) -> None:
        """spec.replicas; the controller applies it to the current ReplicaSet (during a rollout,
        proportionally across the active ones) and records ScalingReplicaSet."""
        if replicas < 0:
            raise InputError(
                "replicas must be >= 0", field="replicas", fix="pass a non-negative count"
            )
        with self.state.lock:
            self.state.deployment.spec_replicas = replicas
        self.state.wake.set()

    def delete_pod(self, pod: str, grace_period_s: float | None = None) -> FaultRecord:
        started = time.time()
        if pod not in self.pod_workers.workers:
            return FaultRecord(
                kind=FaultKind.KILL_POD,
                target=pod,
                started_at=started,
                ended_at=time.time(),
                landed=False,
                detail="no such pod",
            )
        self.pod_workers.delete(pod, grace_period_s)
        return FaultRecord(
            kind=FaultKind.KILL_POD,
            target=pod,
            started_at=started,
            ended_at=time.time(),
            affected=[pod],
            landed=True,
            detail=f"grace {grace_period_s if grace_period_s is not None else 'default'}",
        )

    def zone_outage(self, zone: str) -> FaultRecord:
        return self.node_lifecycle.zone_outage(zone)

    def restore_zone(self, zone: str) -> FaultRecord:
        return self.node_lifecycle.restore_zone(zone)

    def drain_zone(self, zone: str, timeout_s: float = 60.0) -> FaultRecord:
        return self.node_lifecycle.drain_zone(zone, timeout_s)

    def hang_pod(self, pod: str) -> FaultRecord:
        started = time.time()
        pids = self.pod_workers.freeze(pod)
        if pids is None:
            return FaultRecord(
                kind=FaultKind.HANG,
                target=pod,
                started_at=started,
                landed=False,
                detail="no running container",
            )
        return FaultRecord(
            kind=FaultKind.HANG,
            target=pod,
            started_at=started,
            ended_at=time.time(),
            affected=[pod],
            landed=bool(pids),
            detail=f"SIGSTOP to pids {pids}",
        )

    def rollout_restart(self, timeout_s: float = 300.0) -> FaultRecord:
        """Complete means spec.replicas available pods of the new template and every old pod
        terminated (not only terminating); the detail gives the surge/unavailability observed."""
        return self.deployments.rollout_restart(self.update_template, timeout_s)
