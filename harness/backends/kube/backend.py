"""KubeBackend: the scenarios against any cluster reachable through an allowed kube context."""

from __future__ import annotations

import copy
import logging
import re
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from harness.backends.base import (
    Backend,
    BackendError,
    MetricsGapReporter,
    RolloutRestarter,
    ServiceLoadRunner,
)
from harness.backends.kube import convert, faults, rbac, zones
from harness.backends.kube.api import (
    IN_CLUSTER,
    RUN_ID_LABEL,
    KubeApi,
    KubeApiError,
    api_client_for,
    is_namespaced,
    kubeconfig_contexts,
    resource_path,
    run_namespace,
)
from harness.backends.kube.load_job import JobLoadHandle, LoadJobs, service_dns_url
from harness.backends.kube.portforward import PortForward, find_kubectl
from harness.backends.kube.recorder import MetricsGap, Recorder
from harness.backends.kube.rollout_status import rollout_state
from harness.backends.kube.safety import check_context
from harness.backends.observe import (
    Deployment,
    DeploymentStatus,
    Event,
    FaultRecord,
    HPAStatusSample,
    Node,
    Pod,
    ResourceSample,
)
from harness.backends.signal_cleanup import CLEANUP
from harness.errors import InputError
from harness.load.result import LoadPath
from harness.load.spec import LoadSpec
from harness.manifests.bundle import ManifestBundle

log = logging.getLogger("harness.backends.kube")
_STRIP_META = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
)


def new_run_id() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _dns_label(text: str) -> str:
    out = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return out[:63].rstrip("-") or "gauntlet"


class KubeBackend(Backend, RolloutRestarter, ServiceLoadRunner, MetricsGapReporter):
    name = "kube"
    #: the in-cluster load generator's image (None: the Deployment's main container's image)
    load_image: str | None = None
    limits_enforced = True
    limits_reason = "the kubelet and the node's kernel enforce container limits"

    def __init__(
        self,
        workdir: Path,
        *,
        context: str,
        allowed_contexts: list[str],
        chaos_allowed: bool,
        kubeconfig: str | None = None,
        run_id: str | None = None,
        namespace_prefix: str = "gauntlet",
        rollout_timeout_s: float = 600.0,
        api_client: client.ApiClient | None = None,
        poll_s: float = 1.0,
        metrics_poll_s: float = 5.0,
        zone_outage_mode: zones.ZoneOutageMode = "evict",
        zone_outage_dry_run: bool = False,
        eviction_retry_s: float = 5.0,
        outage_wait_s: float = 60.0,
        kubectl: str | None = None,
        keep_namespace: bool = False,
    ) -> None:
        check_context(context, allowed_contexts)  # before any connection is made
        if zone_outage_mode not in ("evict", "taint", "drain"):
            raise InputError(
                f"unknown zone outage mode {zone_outage_mode!r}",
                field="zone_outage_mode",
                fix="use 'evict' (default: cordon + evict the run's own pods) or 'taint' "
                "(NoExecute: also evicts every other tenant's pods on those nodes)",
            )
        super().__init__(workdir)
        self.context = context
        self.chaos_allowed = chaos_allowed
        self.kubeconfig = kubeconfig
        self.run_id = run_id or new_run_id()
        self.namespace = _dns_label(f"{namespace_prefix}-{self.run_id}")
        self.rollout_timeout_s = rollout_timeout_s
        self.poll_s = poll_s
        self.metrics_poll_s = metrics_poll_s
        self.zone_outage_mode: zones.ZoneOutageMode = zone_outage_mode
        self.zone_outage_dry_run = zone_outage_dry_run
        self.eviction_retry_s = eviction_retry_s
        self.outage_wait_s = outage_wait_s
        self.keep_namespace = keep_namespace
        self._kubectl = kubectl
        if api_client is None:
            if context != IN_CLUSTER:
                names, _ = kubeconfig_contexts(kubeconfig)
                if context not in names:
                    raise InputError(
                        f"context {context!r} is not in the kubeconfig "
                        f"(has: {', '.join(names) or 'none'})",
                        file=kubeconfig or "$KUBECONFIG / ~/.kube/config",
                        field="contexts",
                        fix="pick one with `kubectl config get-contexts` or pass --kubeconfig",
                    )
            api_client = api_client_for(context, kubeconfig)
        self.api = KubeApi(api_client)
        self.bundle: ManifestBundle | None = None
        self.deployment_name: str | None = None
        self.service: dict[str, Any] | None = None
        self.hpa_name: str | None = None
        self.recorder: Recorder | None = None
        self.node_changes = zones.NodeChanges()
        self._forwards: dict[str, PortForward] = {}
        self._namespace_created = False
        self._torn_down = False
        self._lock = threading.RLock()
        self._node_zones: dict[str, str] = {}
        self.load_jobs = LoadJobs(self.api, self.namespace, self.run_id, poll_s)

    # lifecycle -------------------------------------------------------------------------------
    def deploy(self, bundle: ManifestBundle) -> None:
        dep = bundle.deployment
        cluster_scoped = [
            f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}"
            for o in bundle
            if not is_namespaced(str(o.get("kind")))
        ]
        if cluster_scoped:
            raise InputError(
                f"cluster-scoped objects are not applied by Gauntlet: {', '.join(cluster_scoped)}",
                file=bundle.source or None,
                fix="remove them; Gauntlet only creates a fresh namespace",
            )
        self.bundle = bundle
        self.deployment_name = dep["metadata"]["name"]
        svc = bundle.service
        self.service = svc
        self.hpa_name = (bundle.hpa or {}).get("metadata", {}).get("name")
        names = ", ".join(
            f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}" for o in bundle
        )
        log.info(
            "kube context %s: creating namespace %s (label %s=%s), then applying %s",
            self.context,
            self.namespace,
            RUN_ID_LABEL,
            self.run_id,
            names,
        )
        # one error naming every missing permission, before anything is created
        rbac.preflight(
            self.api,
            rbac.required_permissions(bundle, self.chaos_allowed),
            self.namespace,
            self.context,
        )
        CLEANUP.register(id(self), self.teardown)
        self.api.create(
            resource_path("v1", "Namespace"),
            run_namespace(self.namespace, self.run_id),
        )
        self._namespace_created = True
        for obj in bundle:
            self._create(obj)
        self.recorder = Recorder(
            self.api,
            self.namespace,
            deployment=self.deployment_name,
            hpa=self.hpa_name,
            poll_s=self.poll_s,
            metrics_poll_s=self.metrics_poll_s,
        )
        self.recorder.start()

    def _create(self, obj: dict[str, Any]) -> None:
        body = copy.deepcopy(obj)
        body.pop("status", None)
        meta = body.setdefault("metadata", {})
        for key in _STRIP_META:
            meta.pop(key, None)
        meta["namespace"] = self.namespace
        meta.setdefault("labels", {})[RUN_ID_LABEL] = self.run_id
        kind, api_version = str(body.get("kind")), str(body.get("apiVersion"))
        try:
            self.api.create(resource_path(api_version, kind, self.namespace), body)
        except KubeApiError as exc:
            raise BackendError(
                f"applying {kind}/{meta.get('name')} into {self.namespace} failed: "
                f"{exc.status} {exc.reason}: {exc.message}"
            ) from None

    def wait_ready(
        self, replicas: int | None = None, timeout_s: float | None = None
    ) -> DeploymentStatus:
        """Wait as `kubectl rollout status` does; `timeout_s` None: the backend's
        rollout_timeout_s."""
        name = self._dep_name()
        limit = self.rollout_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        message = ""
        while True:
            dep = self.api.get(resource_path("apps/v1", "Deployment", self.namespace, name))
            state = rollout_state(dep, replicas)
            message = state.message
            if state.failed:
                raise BackendError(f"{message}{self._why_not_ready()}")
            if state.done:
                return convert.deployment_status(dep)
            if time.monotonic() > deadline:
                raise BackendError(
                    f"rollout not done after {limit:.0f}s: {message}{self._why_not_ready()}"
                )
            time.sleep(min(self.poll_s, 2.0))

    def _why_not_ready(self) -> str:
        """The warnings a user needs to see next to a rollout failure (FailedScheduling,
        BackOff...)."""
        try:
            warnings = [e for e in self.events() if e.type == "Warning"]
        except (KubeApiError, BackendError):
            return ""
        if not warnings:
            return ""
        lines = sorted(
            {
                f"{e.reason} {e.involvedObject.kind}/{e.involvedObject.name}: {e.message}"
                for e in warnings
            }
        )
        return "; recent warnings: " + " | ".join(lines[-5:])

    def teardown(self) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        errors: list[str] = []
        if self.recorder is not None:
            self.recorder.stop()
        for fwd in self._forwards.values():
            fwd.stop()
        self._forwards.clear()
        errors += self.load_jobs.teardown(self.keep_namespace)
        try:
            touched = self.node_changes.restore(self.api)
            if touched:
                log.info("restored nodes (untaint/uncordon): %s", ", ".join(touched))
        except Exception as exc:
            changed = sorted(self.node_changes.cordoned | self.node_changes.tainted)
            errors.append(f"restoring nodes {changed}: {exc}")
        if self._namespace_created and not self.keep_namespace:
            try:
                log.info("deleting namespace %s", self.namespace)
                self.api.delete(
                    resource_path("v1", "Namespace", name=self.namespace),
                    propagationPolicy="Background",
                )
            except KubeApiError as exc:
                if exc.status != 404:
                    errors.append(f"deleting namespace {self.namespace}: {exc}")
        elif self._namespace_created:
            log.info("keeping namespace %s as asked", self.namespace)
        CLEANUP.unregister(id(self))
        if errors:
            raise BackendError("teardown incomplete: " + "; ".join(errors))

    # traffic ---------------------------------------------------------------------------------
    def _forward(self, target: str, port: int | str) -> str:
        with self._lock:
            fwd = self._forwards.get(target)
            if fwd is None:
                fwd = PortForward(
                    target,
                    port,
                    self.namespace,
                    kubectl=self._kubectl or find_kubectl(),
                    kubeconfig=self.kubeconfig,
                    context=self.context,
                )
                fwd.start()
                self._forwards[target] = fwd
            return fwd.url

    def service_url(self) -> str:
        if self.service is None:
            raise BackendError("the manifests have no Service to forward to")
        ports = (self.service.get("spec") or {}).get("ports") or []
        if not ports:
            raise BackendError(f"Service {self.service['metadata']['name']} has no ports")
        return self._forward(f"svc/{self.service['metadata']['name']}", ports[0]["port"])

    def service_load_url(self) -> str:
        """The Service's DNS name and port: what the in-cluster load Job sends to."""
        if self.service is None:
            raise BackendError("the manifests have no Service to send load to")
        return service_dns_url(self.service, self.namespace)

    def load_path_of(self, url: str) -> LoadPath:
        """`service` for the in-cluster Service address, `pod` / `service-port-forward` for
        this backend's port-forwards, else `direct`."""
        u = url.rstrip("/")
        if self.service is not None and u == self.service_load_url().rstrip("/"):
            return "service"
        with self._lock:
            forwards = dict(self._forwards)
        for target, fwd in forwards.items():
            if fwd.url.rstrip("/") == u:
                return "service-port-forward" if target.startswith("svc/") else "pod"
        return "direct"

    def start_service_load(self, spec: LoadSpec, out_dir: Path) -> JobLoadHandle:
        """Run `spec` from a Job in the cluster, through the Service (`load_job`)."""
        main = (self.bundle.deployment if self.bundle else {}).get("spec", {}).get("template", {})
        pod_spec = main.get("spec") or {}
        container = (pod_spec.get("containers") or [{}])[0]
        image = self.load_image or container.get("image")
        if not image:
            raise BackendError("no image for the load generator: deploy() first or set load_image")
        return self.load_jobs.start(
            spec,
            out_dir,
            service_url=self.service_load_url(),
            image=image,
            image_pull_policy=None if self.load_image else container.get("imagePullPolicy"),
            image_pull_secrets=pod_spec.get("imagePullSecrets"),
        )

    def pod_log(self, pod: str) -> str:
        """The main container's current log (the kubelet keeps the previous start's apart)."""
        try:
            obj = self.api.get(resource_path("v1", "Pod", self.namespace, pod))
            containers = (obj.get("spec") or {}).get("containers") or [{}]
            path = resource_path("v1", "Pod", self.namespace, pod) + "/log"
            return self.api.get_text(path, container=containers[0].get("name"))
        except (KubeApiError, BackendError):
            return ""

    def pod_url(self, pod: str) -> str:
        obj = self.api.get(resource_path("v1", "Pod", self.namespace, pod))
        ports = [
            p for c in (obj.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []
        ]
        if not ports:
            raise BackendError(f"pod {pod} declares no containerPort to forward to")
        return self._forward(f"pod/{pod}", ports[0]["containerPort"])

    # observation -----------------------------------------------------------------------------
    def _zones(self, refresh: bool = False) -> dict[str, str]:
        if refresh or not self._node_zones:
            try:
                nodes = self.api.list(resource_path("v1", "Node"))
            except KubeApiError:
                return self._node_zones
            self._node_zones = {
                n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(
                    convert.ZONE_LABEL, ""
                )
                for n in nodes
            }
        return self._node_zones

    def pods(self, include_deleted: bool = False) -> list[Pod]:
        """The namespace's pods; with `include_deleted`, also every pod the recorder saw since
        deploy that the API server no longer lists, in the last state it saw (their
        `deletionTimestamp` is set only where a poll caught them terminating: a pod deleted with
        no grace period can vanish between two polls, `poll_s` apart)."""
        items = self.api.list(resource_path("v1", "Pod", self.namespace))
        if self.recorder is not None:
            self.recorder.record_pods(items)
            if include_deleted:
                live = {(o.get("metadata") or {}).get("name") for o in items}
                items = items + [
                    o for name, o in self.recorder.seen_pods().items() if name not in live
                ]
        selector = self._workload_selector()
        if selector:  # not the run's fault-helper or load-generator pods
            items = [
                o
                for o in items
                if selector.items() <= ((o.get("metadata") or {}).get("labels") or {}).items()
            ]
        node_zones = self._zones()
        if any(
            (p.get("spec") or {}).get("nodeName") not in node_zones
            for p in items
            if (p.get("spec") or {}).get("nodeName")
        ):
            node_zones = self._zones(refresh=True)
        out = []
        for obj in items:
            p = convert.pod(obj, node_zones)
            if self.recorder is not None:
                p.conditionHistory = self.recorder.history_of(p.name)
            out.append(p)
        return out

    def _workload_selector(self) -> dict[str, str]:
        """The Deployment's spec.selector.matchLabels: which of the namespace's pods are the
        replicas under test."""
        dep = self.bundle.deployment if self.bundle else {}
        labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    def nodes(self) -> list[Node]:
        return [convert.node(n) for n in self.api.list(resource_path("v1", "Node"))]

    def events(self, since: float | None = None) -> list[Event]:
        if self.recorder is not None:
            self.recorder._poll_events()
            evs = list(self.recorder.events.values())
        else:
            evs = [
                convert.event(e)
                for e in self.api.list(resource_path("v1", "Event", self.namespace))
            ]
        evs.sort(key=lambda e: e.lastTimestamp)
        return [e for e in evs if since is None or e.lastTimestamp >= since]

    def deployment(self) -> Deployment:
        return convert.deployment(
            self.api.get(resource_path("apps/v1", "Deployment", self.namespace, self._dep_name()))
        )

    def hpa_history(self) -> list[HPAStatusSample]:
        return list(self.recorder.hpa_samples) if self.recorder is not None else []

    def resource_samples(self, since: float | None = None) -> list[ResourceSample]:
        samples = list(self.recorder.resource_samples) if self.recorder is not None else []
        return [s for s in samples if since is None or s.time >= since]

    def metrics_gaps(self, since: float | None = None) -> list[MetricsGap]:
        """When the metrics API did not answer (no resource samples then): first and last
        failed poll, count, statuses; `recovered_at` None while still unavailable."""
        gaps = self.recorder.gaps() if self.recorder is not None else []
        return [g for g in gaps if since is None or (g.recovered_at or since) >= since]

    # actions ---------------------------------------------------------------------------------
    def scale(self, replicas: int) -> None:
        log.info("scaling deployment %s/%s to %d", self.namespace, self._dep_name(), replicas)
        self.api.merge_patch(
            resource_path("apps/v1", "Deployment", self.namespace, self._dep_name(), "scale"),
            {"spec": {"replicas": int(replicas)}},
        )

    # faults: harness.backends.kube.faults, through this backend ------------------------------
    def delete_pod(self, pod: str, grace_period_s: float | None = None) -> FaultRecord:
        return faults.delete_pod(self, pod, grace_period_s)

    def zone_outage(self, zone: str) -> FaultRecord:
        """Cordon the zone's nodes and evict the run's own pods there (or NoExecute-taint them,
        `zone_outage_mode` "taint"; only list what it would touch, `zone_outage_dry_run`)."""
        return faults.zone_outage(self, zone)

    def zone_outage_plan(self, zone: str) -> zones.OutagePlan:
        """Every pod of any namespace `zone_outage(zone)` would touch; changes nothing."""
        return faults.outage_plan(self, zone)

    def restore_zone(self, zone: str) -> FaultRecord:
        return faults.restore_zone(self, zone)

    def drain_zone(self, zone: str, timeout_s: float = 60.0) -> FaultRecord:
        return faults.drain_zone(self, zone, timeout_s)

    def hang_pod(self, pod: str) -> FaultRecord:
        """SIGSTOP the pod's first container's processes from its node, and prove it
        (`hang.hang_pod`)."""
        return faults.hang_pod(self, pod)

    def rollout_restart(self, timeout_s: float = 300.0) -> FaultRecord:
        """`kubectl rollout restart`, then wait as `kubectl rollout status` does (`faults`)."""
        return faults.rollout_restart(self, timeout_s)

    def _unresponsive(self, pod: str, timeout_s: float = 3.0) -> bool:
        return faults.unresponsive(self, pod, faults.health_path(self), timeout_s)

    # helpers ---------------------------------------------------------------------------------
    def _dep_name(self) -> str:
        if self.deployment_name is None:
            raise BackendError("nothing deployed yet: call deploy() first")
        return self.deployment_name
