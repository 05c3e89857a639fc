"""LocalBackend: the rendered manifests run on this machine, with a kubelet's and controllers' rules."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from harness import prom
from harness.backends.base import (
    RESTARTED_AT,
    Backend,
    BackendError,
    RolloutWatch,
    restarted_at_stamp,
)
from harness.backends.local import (
    assets,
    cgroups,
    cleanup,
    hpa_inputs,
    progress,
    scheduler,
    volumes,
)
from harness.backends.local import rollout as rollout_logic
from harness.backends.local.docker_args import docker_run_args
from harness.backends.local.events import EventRecorder
from harness.backends.local.kubelet import Kubelet, LocalPod, ProbeRecord
from harness.backends.local.proxy import Endpoint, ServiceProxy
from harness.backends.local.runtime import (
    ContainerHandle,
    DockerContainer,
    ProcessContainer,
    docker_available,
)
from harness.backends.local.spec import (
    ContainerSpec,
    PodIdentity,
    PodTemplate,
    RolloutSpec,
    default_entrypoint,
    expand,
    gauntlet_command,
    parse_rollout,
    parse_template,
    resolve_env,
)
from harness.backends.observe import (
    Condition,
    DeploymentStatus,
    Event,
    FaultRecord,
    HPAStatusSample,
    Node,
    Pod,
    ResourceSample,
    Taint,
)
from harness.errors import InputError, SetupError
from harness.manifests.bundle import ManifestBundle

UNREACHABLE = "node.kubernetes.io/unreachable"
TEMPLATE_HASH = "pod-template-hash"
DeploymentChange = Callable[[dict[str, Any]], dict[str, Any] | None] | dict[str, Any]


class LocalBackend(Backend):
    """Replicas as real processes (or Docker containers) on simulated zoned nodes.

    Deviation from a cluster, on purpose: pods on a node made unreachable by `zone_outage`
    are deleted after `eviction_delay_s` (default 0, as if tolerationSeconds had expired), not
    after the 300 s default toleration; the replacements then schedule as the scheduler would.
    """

    name = "local"

    def __init__(self, workdir: Path, *, runtime: str = "process", zones: list[str] | None = None,
                 nodes_per_zone: int = 1, node_allocatable: dict[str, Any] | None = None,
                 enforce_limits: bool | None = None, hpa_sync_period_s: float = 15.0,
                 hpa_options: dict[str, Any] | None = None, probe_jitter: bool = True, run_id: str | None = None,
                 backoff_scale: float = 1.0, eviction_delay_s: float = 0.0, sample_period_s: float = 1.0,
                 metric_resolution_s: float = 15.0, namespace: str = "default") -> None:
        super().__init__(Path(workdir))
        if runtime not in ("process", "docker"):
            raise InputError(f"unknown runtime {runtime!r}", field="runtime", fix="use 'process' or 'docker'")
        if runtime == "docker":
            ok, why = docker_available()
            if not ok:
                raise SetupError(f"docker runtime: {why} (start dockerd or use runtime='process')")
        self.runtime = runtime
        self.namespace = namespace
        self.zones = list(zones or ["zone-a", "zone-b", "zone-c"])
        self._nodes = scheduler.make_nodes(self.zones, nodes_per_zone)
        alloc = node_allocatable or {}
        from harness.quantity import cpu_cores, memory_bytes

        self.allocatable = {
            "cpu": cpu_cores(alloc.get("cpu", os.cpu_count() or 1)),
            "memory": float(memory_bytes(alloc.get("memory", psutil.virtual_memory().total))),
        }
        supported, self.limits_reason = cgroups.support()
        if runtime == "docker":
            self.limits_enforced, self.limits_reason = True, "docker --memory/--cpus"
        elif enforce_limits is None:
            self.limits_enforced = supported
        elif enforce_limits and not supported:
            raise SetupError(f"enforce_limits=True but {self.limits_reason}")
        else:
            self.limits_enforced = bool(enforce_limits)
            if not enforce_limits:
                self.limits_reason = "enforce_limits=False: limits are monitored, not enforced"
        self.hpa_sync_period_s = hpa_sync_period_s
        self.hpa_options = dict(hpa_options or {})
        self.probe_jitter = probe_jitter
        self.backoff_scale = backoff_scale
        self.eviction_delay_s = eviction_delay_s
        self.sample_period_s = sample_period_s
        # metrics-server's --metric-resolution: CPU is the rate between two scrapes this far apart
        self.metric_resolution_s = metric_resolution_s
        self.run = cleanup.run_name(run_id or uuid.uuid4().hex[:8])
        self.ledger = cleanup.Ledger(self.run)
        self.events_rec = EventRecorder(namespace)
        self.lock = threading.RLock()
        self.probe_log: list[ProbeRecord] = []
        self._pods: dict[str, LocalPod] = {}
        self._kubelets: dict[str, Kubelet] = {}
        self._gone: list[LocalPod] = []
        self._samples: list[ResourceSample] = []
        self._hpa_history: list[HPAStatusSample] = []
        self._bundle: ManifestBundle | None = None
        self._template: PodTemplate | None = None
        self.spec_replicas = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._proxy: ServiceProxy | None = None
        self._endpoints: list[Endpoint] = []
        self._ip_block = f"127.{random.randint(16, 250)}.{random.randint(1, 250)}"
        self._ip_next = 2
        self._closed = False
        self._hash = uuid.uuid4().hex[:10]  # the current pod-template-hash (set from the template by deploy)
        self._hash_salt = uuid.uuid4().hex  # template hashes differ between runs, as pod names must
        self._deployment: dict[str, Any] = {}
        self._templates: dict[str, PodTemplate] = {}  # pod-template-hash -> template (one per ReplicaSet)
        self._rs: dict[str, int] = {}  # pod-template-hash -> ReplicaSet spec.replicas
        self._rs_created: dict[str, float] = {}
        # the deployment.kubernetes.io/desired-replicas and max-replicas annotations per set
        self._rs_desired: dict[str, int] = {}
        self._rs_max: dict[str, int] = {}
        self.rollout = RolloutSpec(0, 0, 1, 0.0, rollout_logic.ROLLING_UPDATE)
        self._cpu_prev: dict[str, tuple[float, float]] = {}
        self._last_scale_time: float | None = None
        self._mem_warned: set[str] = set()
        self._dep_conditions: dict[str, Condition] = {}  # Deployment status.conditions by type
        self._last_counts: progress.Counts | None = None  # the status of the previous controller sync
        self._flags_warned: set[tuple[str, str]] = set()  # (pod, container) whose docker-flag deviations were told
        cleanup.register(self)

    # lifecycle ---------------------------------------------------------------------------------
    def deploy(self, bundle: ManifestBundle) -> None:
        if self._bundle is not None:
            raise BackendError("this LocalBackend already has a deployment; make a new one")
        dep = copy.deepcopy(bundle.deployment)
        self._template = parse_template(dep, bundle.source)
        rollout = parse_rollout(dep, bundle.source)
        self.rollout = rollout
        c = self._template.main
        self._check_runnable(self._template, bundle)
        self._bundle = bundle
        self._deployment = dep
        self._hash = self._template_hash(dep)
        self._templates[self._hash] = self._template
        self.deployment_name = (dep.get("metadata") or {}).get("name", "deployment")
        self._warn_unreproduced(self._template)
        prepared = assets.ensure_model(dep)
        if prepared:
            self.events_rec.record("Deployment", self.deployment_name, "ModelPrepared", prepared,
                                   source="gauntlet")
        with self.lock:
            self.spec_replicas = rollout.replicas
        svc = bundle.service
        svc_port = 0
        if svc:
            ports = (svc.get("spec") or {}).get("ports") or []
            if ports:
                tp = ports[0].get("targetPort", ports[0].get("port"))
                self._target_port = self._resolve_port(tp)
                svc_port = int(ports[0].get("port", 0))
        if not getattr(self, "_target_port", None):
            self._target_port = c.first_port or 8000
        self._proxy = ServiceProxy(lambda: self._endpoints, host=f"{self._ip_block}.1", port=svc_port)
        try:
            self._proxy.start()
        except OSError:
            self._proxy = ServiceProxy(lambda: self._endpoints, host=f"{self._ip_block}.1", port=0)
            self._proxy.start()
        for target, name in ((self._controller_loop, "deployment-controller"), (self._sampler_loop, "sampler")):
            t = threading.Thread(target=target, name=f"gauntlet-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if bundle.hpa is not None:
            t = threading.Thread(target=self._hpa_loop, args=(bundle.hpa,), name="gauntlet-hpa", daemon=True)
            t.start()
            self._threads.append(t)
        self._wake.set()

    def _check_runnable(self, template: PodTemplate, bundle: ManifestBundle) -> None:
        """Refuse at deploy what would fail every container start (CreateContainerConfigError)."""
        source = bundle.source
        probe_identity = PodIdentity("pod", self.namespace, "127.0.0.1", "node", template.labels)
        for c in [*template.init_containers, template.main]:
            if self.runtime == "process" and not c.command and default_entrypoint(c.image) is None:
                raise InputError("the process runtime needs the container's command (there is no image to read "
                                 "its ENTRYPOINT from)", file=source or None, field=f"{c.field_path}.command",
                                 fix="set command/args, or use the docker runtime")
            resolve_env(c, probe_identity, bundle.objects, source)

    def _template_hash(self, dep: dict[str, Any]) -> str:
        """pod-template-hash: a digest of spec.template (the same template -> the same ReplicaSet)."""
        tpl = (dep.get("spec") or {}).get("template") or {}
        text = json.dumps(tpl, sort_keys=True, default=str)
        return hashlib.sha256((self._hash_salt + text).encode()).hexdigest()[:10]

    def update_template(self, change: DeploymentChange) -> str:
        """Change the Deployment like `kubectl apply`/`patch`: a new pod template starts a rollout.

        `change` is a whole new Deployment dict, or a function given a copy of the current one
        (it edits it in place or returns the new one). The pod template, spec.strategy and
        minReadySeconds are taken from it; spec.replicas is not (that is `scale()`'s, as the HPA
        owns it). Going back to an earlier template scales its ReplicaSet up again, like a
        rollback. Returns the pod-template-hash now current.
        """
        if self._bundle is None:
            raise BackendError("deploy() first")
        with self.lock:
            current = copy.deepcopy(self._deployment)
        if callable(change):
            changed = change(current)
            new = current if changed is None else changed
        else:
            new = copy.deepcopy(change)
        source = self._bundle.source
        template = parse_template(new, source)
        parse_rollout(new, source)  # refuse a bad strategy before anything changes
        self._check_runnable(template, self._bundle)
        h = self._template_hash(new)
        with self.lock:
            self._deployment = new
            self._templates.setdefault(h, template)
            self._hash = h
            self._template = self._templates[h]
            self.rollout = self._rollout_spec()
        self._wake.set()
        return h

    def _rollout_spec(self) -> RolloutSpec:
        """spec.strategy resolved against the current spec.replicas (percentages follow scale())."""
        spec = {**(self._deployment.get("spec") or {}), "replicas": self.spec_replicas}
        return parse_rollout({"spec": spec}, self._bundle.source if self._bundle else "")

    def _warn_unreproduced(self, template: PodTemplate) -> None:
        """Say what of the pod spec this backend does not run, instead of dropping it silently."""
        extra = [c.name for c in template.containers[1:]]
        sidecars = template.sidecars
        if extra or sidecars:
            self.events_rec.record(
                "Deployment", self.deployment_name, "RuntimeDeviation",
                f"only container {template.main.name} (after the init containers) runs locally; not run: "
                + ", ".join([f"containers {extra}"] * bool(extra)
                            + [f"sidecar initContainers {sidecars}"] * bool(sidecars)),
                type_="Warning", source="gauntlet")

    def _resolve_port(self, port: Any) -> int:
        assert self._template is not None
        if isinstance(port, int):
            return port
        return self._template.main.ports.get(str(port), int(port) if str(port).isdigit() else 0)

    def wait_ready(self, replicas: int | None = None, timeout_s: float = 300.0) -> DeploymentStatus:
        want = self.spec_replicas if replicas is None else replicas
        self.wait_until(lambda: self.deployment_status().readyReplicas >= want, timeout_s,
                        what=f"{want} ready replicas ({self._describe()})")
        return self.deployment_status()

    def _describe(self) -> str:
        return "; ".join(f"{p.name}: {p.phase} ready={p.ready} restarts={p.restart_count}"
                         for p in list(self._pods.values()))

    def teardown(self) -> None:
        with self.lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        kubelets = list(self._kubelets.values())
        for k in kubelets:
            k.kill_now()
        if self._proxy is not None:
            self._proxy.stop()
        for k in kubelets:
            k.thread.join(10)
        if self.limits_enforced and self.runtime == "process":
            cgroups.remove_run(self.run)
        for pid, ticks in list(self.ledger.pids.items()):
            cleanup.kill_pid_checked(pid, ticks)
        cleanup.docker_rm(sorted(self.ledger.containers))
        volumes.remove_run(self.run)
        self.ledger.remove()
        cleanup.unregister(self)

    # traffic -------------------------------------------------------------------------------------
    def service_url(self) -> str:
        if self._proxy is None:
            raise BackendError("deploy() first")
        return self._proxy.url

    def pod_url(self, pod: str) -> str:
        p = self._pods.get(pod) or next((g for g in self._gone if g.name == pod), None)
        if p is None or p.pod_ip is None:
            raise BackendError(f"no pod {pod!r} with an IP")
        return f"http://{p.pod_ip}:{self._target_port}"

    def requests_by_pod(self) -> dict[str, int]:
        return dict(self._proxy.requests_by_pod) if self._proxy else {}

    def _refresh_endpoints(self) -> None:
        """EndpointSlice controller: the Service routes only to serving (Ready) pods."""
        with self.lock:
            self._endpoints = [(p.name, p.pod_ip or "", self._target_port)
                               for p in self._pods.values() if p.serving and p.pod_ip]

    def _on_pod_change(self) -> None:
        """A kubelet changed a pod: update endpoints now, and let the controller react."""
        self._refresh_endpoints()
        self._wake.set()

    # observation -----------------------------------------------------------------------------------
    def pods(self, include_deleted: bool = False) -> list[Pod]:
        with self.lock:
            live = [p.to_observed() for p in self._pods.values()]
            if include_deleted:
                live += [p.to_observed() for p in self._gone]
        return live

    def nodes(self) -> list[Node]:
        with self.lock:
            return [n.model_copy(deep=True) for n in self._nodes]

    def events(self, since: float | None = None) -> list[Event]:
        return self.events_rec.list(since)

    def deployment_status(self) -> DeploymentStatus:
        """Deployment status: updated = pods of the current template; available honours
        minReadySeconds; the Available and Progressing conditions as the controller sets them."""
        with self.lock:
            c = self._counts(time.time())
            desired = max(self.spec_replicas, sum(self._rs.values()))
            return DeploymentStatus(replicas=c.replicas, readyReplicas=c.ready, availableReplicas=c.available,
                                    updatedReplicas=c.updated, unavailableReplicas=max(0, desired - c.available),
                                    specReplicas=self.spec_replicas,
                                    conditions=[x.model_copy() for x in self._dep_conditions.values()])

    def _counts(self, now: float) -> progress.Counts:
        active = [p for p in self._pods.values() if p.deletion is None]
        return progress.Counts(replicas=len(active),
                               updated=sum(1 for p in active if p.labels.get(TEMPLATE_HASH) == self._hash),
                               ready=sum(1 for p in active if p.ready),
                               available=sum(1 for p in active if self._available(p, now)))

    def _sync_conditions(self, now: float) -> None:
        """syncRolloutStatus (under the lock): Available and Progressing from this sync's counts."""
        counts = self._counts(now)
        r = self.rollout
        unavailable = rollout_logic.max_unavailable(
            rollout_logic.Strategy(r.strategy, self.spec_replicas, r.max_surge, r.max_unavailable))
        self._dep_conditions["Available"] = progress.available(
            self._dep_conditions.get("Available"), self.spec_replicas, unavailable, counts.available, now)
        cond = progress.progressing(self._dep_conditions.get("Progressing"), self._rs_name(self._hash),
                                    self.spec_replicas, self._last_counts, counts, r.progress_deadline_s, now)
        if cond is not None:
            self._dep_conditions["Progressing"] = cond
        self._last_counts = counts

    def _available(self, p: LocalPod, now: float) -> bool:
        cond = p.conditions.get("Ready")
        since = cond.lastTransitionTime if cond is not None and cond.status == "True" else None
        return (p.deletion is None and not p.finished
                and rollout_logic.is_available(p.ready, since, self.rollout.min_ready_s, now))

    def hpa_history(self) -> list[HPAStatusSample]:
        with self.lock:
            return list(self._hpa_history)

    def resource_samples(self, since: float | None = None) -> list[ResourceSample]:
        with self.lock:
            return [s for s in self._samples if since is None or s.time >= since]

    def probe_timeline(self) -> list[ProbeRecord]:
        return list(self.probe_log)

    # actions ----------------------------------------------------------------------------------------
    def scale(self, replicas: int) -> None:
        """spec.replicas; the controller applies it to the current ReplicaSet (during a rollout,
        proportionally across the active ones) and records ScalingReplicaSet."""
        if replicas < 0:
            raise InputError("replicas must be >= 0", field="replicas", fix="pass a non-negative count")
        with self.lock:
            self.spec_replicas = replicas
        self._wake.set()

    def delete_pod(self, pod: str, grace_period_s: float | None = None) -> FaultRecord:
        started = time.time()
        k = self._kubelets.get(pod)
        if k is None:
            return FaultRecord(kind="kill-pod", target=pod, started_at=started, ended_at=time.time(), landed=False,
                               detail="no such pod")
        self._delete(pod, grace_period_s)
        return FaultRecord(kind="kill-pod", target=pod, started_at=started, ended_at=time.time(), affected=[pod],
                           landed=True, detail=f"grace {grace_period_s if grace_period_s is not None else 'default'}")

    def _delete(self, pod: str, grace_s: float | None, reason: str = "") -> None:
        """Pod deletion: terminating at once (no longer counted, out of the endpoints), then killed."""
        with self.lock:
            p = self._pods.get(pod)
            k = self._kubelets.get(pod)
            if p is None or (k is None and p.node_name is not None):
                return
            if p.deletion is None:
                p.deletion = time.time()
            if k is None:  # never bound: nothing runs, the pod is gone at once
                p.finished = True
                if reason:
                    p.reason = reason
        self._refresh_endpoints()
        if k is not None:
            threading.Thread(target=k.delete, args=(grace_s, reason), daemon=True).start()
        self._wake.set()

    def zone_outage(self, zone: str) -> FaultRecord:
        self._check_zone(zone)
        started = time.time()
        with self.lock:
            for n in self._nodes:
                if n.zone == zone:
                    n.ready = False
                    n.taints = [t for t in n.taints if t.key != UNREACHABLE] + [
                        Taint(key=UNREACHABLE, effect="NoSchedule"), Taint(key=UNREACHABLE, effect="NoExecute")]
            victims = [p for p in self._pods.values() if p.zone == zone and p.deletion is None]
        for p in victims:
            self.events_rec.record("Pod", p.name, "NodeNotReady", f"Node {p.node_name} is unreachable",
                                   type_="Warning", source="node-controller")
            self._kubelets[p.name].kill_now()  # the node is gone: processes die at once
        if self.eviction_delay_s > 0:
            time.sleep(self.eviction_delay_s)
        for p in victims:
            self.events_rec.record("Pod", p.name, "TaintManagerEviction", "Marking for deletion Pod",
                                   source="taint-eviction-controller")
        self._wake.set()
        return FaultRecord(kind="zone-outage", target=zone, started_at=started, ended_at=time.time(),
                           affected=[p.name for p in victims] + [n.name for n in self._nodes if n.zone == zone],
                           landed=bool(victims), detail=f"{len(victims)} pods SIGKILLed; nodes tainted {UNREACHABLE}")

    def restore_zone(self, zone: str) -> FaultRecord:
        self._check_zone(zone)
        started = time.time()
        with self.lock:
            for n in self._nodes:
                if n.zone == zone:
                    n.ready, n.unschedulable = True, False
                    n.taints = [t for t in n.taints if t.key not in (UNREACHABLE, "node.kubernetes.io/unschedulable")]
        self._wake.set()
        return FaultRecord(kind="restore", target=zone, started_at=started, ended_at=time.time(), landed=True,
                           affected=[n.name for n in self._nodes if n.zone == zone])

    def drain_zone(self, zone: str, timeout_s: float = 60.0) -> FaultRecord:
        """kubectl drain of the zone's nodes: cordon, then evictions through the PDB (429 -> retry 5 s)."""
        self._check_zone(zone)
        started = time.time()
        with self.lock:
            for n in self._nodes:
                if n.zone == zone:
                    n.unschedulable = True
                    n.taints.append(Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule"))
        deadline = time.monotonic() + timeout_s
        evicted: list[str] = []
        blocked: dict[str, int] = {}
        while True:
            with self.lock:
                todo = [p.name for p in self._pods.values() if p.zone == zone and p.deletion is None]
            if not todo:
                break
            for name in todo:
                code = self._evict(name)
                if code == 200:
                    evicted.append(name)
                else:
                    blocked[name] = blocked.get(name, 0) + 1
            if time.monotonic() > deadline:
                break
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        with self.lock:
            left = [p.name for p in self._pods.values() if p.zone == zone and p.deletion is None]
        detail = (f"evicted {len(evicted)}; " + (f"blocked by the PodDisruptionBudget (429) for {left}"
                                                  if left else "drain complete"))
        return FaultRecord(kind="drain", target=zone, started_at=started, ended_at=time.time(), affected=evicted,
                           landed=not left, detail=detail, blocked=left, http_429=sum(blocked.values()))

    def _evict(self, pod: str) -> int:
        """Eviction API: 200 when the PDB allows the disruption, else 429."""
        pdb = self._bundle.pdb if self._bundle else None
        with self.lock:
            p = self._pods.get(pod)
            if p is None or p.deletion is not None:
                return 200
            if pdb is not None:
                healthy = sum(1 for q in self._pods.values() if q.ready and q.deletion is None)
                expected = self.spec_replicas
                spec = pdb.get("spec") or {}
                if "minAvailable" in spec:
                    desired = _int_or_percent(spec["minAvailable"], expected, True)
                else:
                    desired = expected - _int_or_percent(spec.get("maxUnavailable", 0), expected, True)
                allowed = healthy - desired
                unhealthy_ok = not p.ready and (spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                                                or healthy >= desired)
                if allowed <= 0 and not unhealthy_ok:
                    self.events_rec.record("Pod", pod, "EvictionBlocked",
                                           "Cannot evict pod as it would violate the pod's disruption budget.",
                                           type_="Warning", source="gauntlet")
                    return 429
        self.events_rec.record("Pod", pod, "Evicted", "Evicted by drain", source="gauntlet")
        self._delete(pod, None)
        return 200

    def hang_pod(self, pod: str) -> FaultRecord:
        started = time.time()
        with self.lock:
            p = self._pods.get(pod)
            handle = p.handle if p else None
        if p is None or handle is None:
            return FaultRecord(kind="hang", target=pod, started_at=started, landed=False, detail="no running container")
        import signal as _signal

        pids = handle.pids()
        handle.signal(_signal.SIGSTOP)
        p.hung = True
        return FaultRecord(kind="hang", target=pod, started_at=started, ended_at=time.time(),
                           affected=[pod], landed=bool(pids), detail=f"SIGSTOP to pids {pids}")

    def rollout_restart(self, timeout_s: float = 300.0) -> FaultRecord:
        """`kubectl rollout restart`: a new restartedAt annotation, then the rollout to its end.

        Complete means spec.replicas available pods of the new template and every old pod
        terminated (not only terminating). The detail gives the surge/unavailability observed.
        """
        started = time.time()
        stamp = restarted_at_stamp(started)
        with self.lock:
            old_hash = self._hash
            old_pods = sorted(p.name for p in self._pods.values() if not p.finished)

        def annotate(dep: dict[str, Any]) -> None:
            meta = dep.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
            meta.setdefault("annotations", {})[RESTARTED_AT] = stamp

        new_hash = self.update_template(annotate)
        watch = RolloutWatch()
        deadline = time.monotonic() + timeout_s
        while True:
            done, failed, missing = self._rollout_progress(new_hash, watch, started)
            if done or failed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        took = time.time() - started
        r = self.rollout
        knobs = (f"{r.strategy} maxSurge {r.max_surge} maxUnavailable {r.max_unavailable}"
                 if r.strategy == rollout_logic.ROLLING_UPDATE else r.strategy)
        head = f"{self._rs_name(old_hash)} -> {self._rs_name(new_hash)} ({knobs}, restartedAt {stamp}): "
        if done:
            detail = f"complete in {took:.1f}s"
        elif failed:
            detail = (f"failed after {took:.1f}s: exceeded its progress deadline ({progress.TIMED_OUT}, "
                      f"progressDeadlineSeconds {r.progress_deadline_s:g}): {missing}")
        else:
            detail = f"not complete after {timeout_s:.0f}s: {missing}"
        return FaultRecord(kind="rollout-restart", target=self.deployment_name, started_at=started,
                           ended_at=time.time(), affected=old_pods, landed=done,
                           detail=f"{head}{detail}; {watch.summary()}")

    def _rollout_progress(self, new_hash: str, watch: RolloutWatch, since: float) -> tuple[bool, bool, str]:
        """(rollout complete?, past its progress deadline?, what is missing), sampling
        surge/unavailability into `watch`. Only a deadline crossed after `since` counts: a
        ProgressDeadlineExceeded left by an earlier rollout is not this one's."""
        with self.lock:
            st = self.deployment_status()
            old_left = sum(1 for p in self._pods.values()
                           if p.labels.get(TEMPLATE_HASH) != new_hash and not p.finished)
        spec = st.specReplicas
        watch.observe(spec, st.replicas, st.availableReplicas)
        done = st.updatedReplicas == st.replicas == spec and st.availableReplicas >= spec and old_left == 0
        prog = st.condition("Progressing")
        failed = prog is not None and prog.reason == progress.TIMED_OUT and prog.lastTransitionTime >= since
        return done, failed, (f"{st.updatedReplicas}/{spec} updated, {st.availableReplicas} available, "
                              f"{old_left} old pod(s) not yet terminated")

    def _check_zone(self, zone: str) -> None:
        if zone not in self.zones:
            raise InputError(f"unknown zone {zone!r}", field="zone", fix=f"use one of {self.zones}")

    # the Deployment controller + scheduler -----------------------------------------------------------
    def _controller_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._reconcile()
            except Exception as err:  # keep the controller alive; surface the problem as an event
                self.events_rec.record("Deployment", self.deployment_name, "ReconcileError", repr(err),
                                       type_="Warning", source="gauntlet")

    def _reconcile(self) -> None:
        with self.lock:
            for name, p in list(self._pods.items()):
                if p.finished:
                    self._gone.append(self._pods.pop(name))
                    volumes.remove_pod(self.run, name)
                    self._kubelets.pop(name, None)
            self._sync_deployment(time.time())
            creates, deletes = self._sync_replicasets()
        for h in creates:
            self._create_pod(h)
        for h, name in deletes:
            self.events_rec.record("ReplicaSet", self._rs_name(h), "SuccessfulDelete", f"Deleted pod: {name}",
                                   source="replicaset-controller")
            self._delete(name, None)
        self._schedule_pending()
        self._refresh_endpoints()
        with self.lock:
            self._sync_conditions(time.time())

    def _rs_name(self, h: str) -> str:
        return f"{self.deployment_name}-{h}"

    def _sync_deployment(self, now: float) -> None:
        """The Deployment controller (under the lock): ReplicaSet sizes for spec.replicas and the strategy."""
        self.rollout = self._rollout_spec()
        if self._hash not in self._rs:
            self._rs[self._hash] = 0
            self._rs_created[self._hash] = now
            self._dep_conditions["Progressing"] = progress.new_replicaset_created(
                self._dep_conditions.get("Progressing"), self._rs_name(self._hash), now)
        states = {h: rollout_logic.ReplicaSetState(h, size, 0, self._rs_created[h]) for h, size in self._rs.items()}
        for p in self._pods.values():
            h = p.labels.get(TEMPLATE_HASH, "")
            if h in states and self._available(p, now):
                st = states[h]
                states[h] = rollout_logic.ReplicaSetState(h, st.replicas, st.available + 1, st.created)
        new = states.pop(self._hash)
        old_running = any(p.labels.get(TEMPLATE_HASH) != self._hash and not p.finished
                          and p.phase not in ("Succeeded", "Failed") for p in self._pods.values())
        r = self.rollout
        spec = self.spec_replicas
        strategy = rollout_logic.Strategy(r.strategy, spec, r.max_surge, r.max_unavailable)
        if rollout_logic.is_scaling_event(self._rs, self._rs_desired, spec):
            saturated = new.replicas == spec and self._rs_desired.get(self._hash) == spec and new.available == spec
            active = sum(1 for p in self._pods.values() if p.deletion is None)
            changes = rollout_logic.scale(strategy, new, list(states.values()), self._rs_max, active, saturated)
            for h, n in self._rs.items():
                changes.setdefault(h, n)  # every active set is re-annotated for the new count
        else:
            changes = rollout_logic.plan(strategy, new, list(states.values()), old_running)
            changes.setdefault(self._hash, new.replicas)
        for h, size in changes.items():
            self._scale_replicaset(h, size)

    def _scale_replicaset(self, h: str, size: int) -> None:
        """scaleReplicaSet: the size, and the desired-/max-replicas annotations it was sized for."""
        r = self.rollout
        self._rs_desired[h] = self.spec_replicas
        self._rs_max[h] = self.spec_replicas + (r.max_surge if r.strategy == rollout_logic.ROLLING_UPDATE else 0)
        old = self._rs.get(h, 0)
        if size == old:
            return
        self._rs[h] = size
        self.events_rec.record("Deployment", self.deployment_name, "ScalingReplicaSet",
                               f"Scaled {'up' if size > old else 'down'} replica set {self._rs_name(h)} to {size}",
                               source="deployment-controller")

    def _sync_replicasets(self) -> tuple[list[str], list[tuple[str, str]]]:
        """The ReplicaSet controller (under the lock): pods to create (hashes) and to delete per set."""
        creates: list[str] = []
        deletes: list[tuple[str, str]] = []
        for h, size in self._rs.items():
            active = [p for p in self._pods.values() if p.deletion is None and p.labels.get(TEMPLATE_HASH) == h]
            diff = size - len(active)
            if diff > 0:
                creates += [h] * diff
            elif diff < 0:
                deletes += [(h, p.name) for p in sorted(active, key=_deletion_rank)[:-diff]]
        return creates, deletes

    def _create_pod(self, h: str) -> None:
        template = self._templates[h]
        name = f"{self._rs_name(h)}-{uuid.uuid4().hex[:5]}"
        labels = {**template.labels, TEMPLATE_HASH: h}
        pod = LocalPod(name=name, namespace=self.namespace, labels=labels, template=template, creation=time.time())
        pod.set_condition("PodScheduled", "False", "Unschedulable", "waiting for the scheduler")
        with self.lock:
            self._pods[name] = pod
        self.events_rec.record("ReplicaSet", self._rs_name(h), "SuccessfulCreate",
                               f"Created pod: {name}", source="replicaset-controller")

    def _schedule_pending(self) -> None:
        with self.lock:
            pending = [p for p in self._pods.values() if p.node_name is None and p.deletion is None]
            pending.sort(key=lambda p: p.creation)
        for p in pending:
            with self.lock:
                # terminating pods too, as in the scheduler's cache: they hold their node's
                # resources and anti-affinity domain until they are gone
                existing = [{"name": q.name, "nodeName": q.node_name, "labels": q.labels, "deleted": q.deletion,
                             "affinity": q.template.spec.get("affinity"), **_requests(q.template)}
                            for q in self._pods.values() if q.node_name and not q.finished]
                node, why = scheduler.schedule({"metadata": {"labels": p.labels}, "spec": p.template.spec},
                                               self._nodes, existing, self.allocatable, self.namespace)
            if node is None:
                cond = p.conditions.get("PodScheduled")
                if cond is None or cond.message != why:
                    with self.lock:
                        p.conditions.pop("PodScheduled", None)
                        p.set_condition("PodScheduled", "False", "Unschedulable", why)
                self.events_rec.record("Pod", p.name, "FailedScheduling", why, type_="Warning", source="default-scheduler")
                continue
            self._bind(p, node)

    def _bind(self, p: LocalPod, node: Node) -> None:
        with self.lock:
            if p.deletion is not None:  # deleted while it waited for the scheduler
                return
            p.node_name, p.zone = node.name, node.zone
            p.pod_ip = self._allocate_ip()
            p.set_condition("PodScheduled", "True")
        self.events_rec.record("Pod", p.name, "Scheduled", f"Successfully assigned {self.namespace}/{p.name} to "
                               f"{node.name}", source="default-scheduler")
        k = Kubelet(p, self._start_container, self.events_rec, self.lock, jitter=self.probe_jitter,
                    backoff_scale=self.backoff_scale, on_change=self._on_pod_change, probe_log=self.probe_log)
        with self.lock:
            if self._closed:
                return
            self._kubelets[p.name] = k
        k.start()

    def _allocate_ip(self) -> str:
        """A loopback 'pod IP' whose container ports are free (127.X.Y.N, X.Y random per run)."""
        assert self._template is not None
        ports = list(self._template.main.ports.values()) or [self._target_port]
        for _ in range(250):
            n = self._ip_next
            self._ip_next = 2 + (self._ip_next - 1) % 253
            ip = f"{self._ip_block}.{n}"
            if ip in {q.pod_ip for q in self._pods.values() if not q.finished}:
                continue
            if all(_port_free(ip, port) for port in ports):
                return ip
        raise BackendError("no free loopback pod IP")

    # the container runtime ---------------------------------------------------------------------------
    def _start_container(self, pod: LocalPod, c: ContainerSpec) -> ContainerHandle:
        assert self._bundle is not None
        ident = PodIdentity(pod.name, pod.namespace, pod.pod_ip or "127.0.0.1", pod.node_name or "", pod.labels)
        env = resolve_env(c, ident, self._bundle.objects, self._bundle.source)
        pod.env = {**os.environ, **env}
        command = [expand(x, env) for x in c.command]
        args = [expand(x, env) for x in c.args]
        log = self.workdir / "logs" / f"{pod.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write(f"--- container {c.name} start {time.time():.3f} restart {pod.restart_count}\n".encode())
        if self.runtime == "docker":
            run = docker_run_args(pod.template.spec, c, volumes.empty_dirs(pod.template.spec, self.run, pod.name))
            if (pod.name, c.name) not in self._flags_warned:
                self._flags_warned.add((pod.name, c.name))
                for note in run.warnings:
                    self.events_rec.record("Pod", pod.name, "RuntimeDeviation", note, type_="Warning",
                                           source="gauntlet-docker-runtime")
            name = f"gauntlet-{self.run.split('@')[0]}-{pod.name}-{c.name}-{pod.container_id + 1}"
            return DockerContainer(name[:120],
                                   c.image, command, args, env, c.working_dir, run.flags,
                                   {"gauntlet.run": self.run, "gauntlet.pod": pod.name}, self.ledger, log)
        argv = command or list(default_entrypoint(c.image) or [])
        argv = argv + args
        if argv and argv[0] == "gauntlet":
            argv = gauntlet_command() + argv[1:]
        cg = None
        if self.limits_enforced:
            cg = cgroups.PodCgroup(self.run, pod.name)
            cg.create(c.memory_limit, c.cpu_limit)
        with self.lock:
            if self._closed:
                raise BackendError("backend is shutting down")
            return ProcessContainer(argv, pod.env, c.working_dir, log, cg, self.ledger)

    # resource sampler ----------------------------------------------------------------------------------
    def _sampler_loop(self) -> None:
        while not self._stop.wait(self.sample_period_s):
            with contextlib.suppress(Exception):
                self._sample()

    def _sample(self) -> None:
        now = time.time()
        # Like cAdvisor, read the pod's cgroup while the pod exists, also between container
        # restarts (its OOM counter is the evidence of a crash-looping, OOM-killed container).
        pod_cgroups = self.limits_enforced and self.runtime == "process"
        with self.lock:
            live = [(p, p.handle) for p in self._pods.values()
                    if p.handle is not None or (pod_cgroups and p.start_time is not None and not p.finished)]
        out: list[ResourceSample] = []
        for p, handle in live:
            c = p.template.main  # its own template: during a rollout old and new pods may differ
            cg = handle.cgroup if handle is not None else cgroups.PodCgroup(self.run, p.name)
            cpu_s: float | None = None
            mem: int | None = None
            ooms: int | None = None
            throttling: tuple[int, int, int] | None = None
            if cg is not None:
                if not cg.memory.is_dir():
                    continue  # not created yet, or already removed
                ns = cg.cpu_usage_ns()
                cpu_s = ns / 1e9 if ns is not None else None
                mem = cg.working_set()
                ooms = cg.oom_kills()
                throttling = cg.cpu_throttling() if c.cpu_limit else None
            elif handle is not None:
                cpu_s, mem = _proc_tree_usage(handle.pids())
            cores = None
            prev = self._cpu_prev.get(p.name)
            if cpu_s is not None:
                if prev is not None and now > prev[0] and cpu_s >= prev[1]:
                    cores = (cpu_s - prev[1]) / (now - prev[0])
                self._cpu_prev[p.name] = (now, cpu_s)
            if (not self.limits_enforced and c.memory_limit and mem and mem > c.memory_limit
                    and p.name not in self._mem_warned):
                self._mem_warned.add(p.name)
                self.events_rec.record("Pod", p.name, "MemoryLimitExceeded",
                                       f"working set {mem} > limit {c.memory_limit} (limits monitored, not enforced: "
                                       f"{self.limits_reason})", type_="Warning", source="gauntlet")
            out.append(ResourceSample(time=now, pod=p.name, cpu_cores=cores, cpu_request_cores=c.cpu_request,
                                      cpu_limit_cores=c.cpu_limit, memory_bytes=mem, memory_limit_bytes=c.memory_limit,
                                      oom_kills=ooms, cpu_usage_s=cpu_s,
                                      cpu_periods=throttling[0] if throttling else None,
                                      cpu_throttled_periods=throttling[1] if throttling else None,
                                      cpu_throttled_s=throttling[2] / 1e9 if throttling else None))
        with self.lock:
            self._samples.extend(out)

    # HPA controller loop ---------------------------------------------------------------------------------
    def _hpa_loop(self, hpa: dict[str, Any]) -> None:
        from harness.models.hpa import HPAController

        ctl = HPAController(hpa, **self.hpa_options)
        name = (hpa.get("metadata") or {}).get("name", "hpa")
        while not self._stop.wait(self.hpa_sync_period_s):
            try:
                self._hpa_sync(ctl, name, hpa)
            except Exception as err:
                self.events_rec.record("HorizontalPodAutoscaler", name, "FailedComputeMetricsReplicas", repr(err),
                                       type_="Warning", source="horizontal-pod-autoscaler")

    def _hpa_sync(self, ctl: Any, name: str, hpa: dict[str, Any]) -> None:
        now = time.time()
        with self.lock:
            local = list(self._pods.values())
            pods = [p.to_observed() for p in local]
        v1 = [hpa_inputs.v1_pod(obs, lp.template) for obs, lp in zip(pods, local, strict=True)]
        metrics = ctl.metrics
        pod_metrics = hpa_inputs.pod_metrics_from_samples(self.resource_samples(now - 3 * self.metric_resolution_s),
                                               {p.name: p.containerStatuses[0].name for p in pods},
                                               self.metric_resolution_s)
        wanted = [m["pods"]["metric"]["name"] for m in metrics if m.get("type") == "Pods"]
        custom: dict[str, dict[str, dict[str, float]]] = {"pods": {}}
        if wanted:
            for p in pods:
                if p.phase != "Running" or p.podIP is None or p.deletionTimestamp is not None:
                    continue
                values = prom.scrape(f"http://{p.podIP}:{self._metrics_port()}/metrics", timeout_s=2)
                for mname in wanted:
                    v = prom.total(values, mname)
                    if v is not None:
                        custom["pods"].setdefault(mname, {})[p.name] = v
        with self.lock:
            spec = self.spec_replicas
        decision = ctl.reconcile(now, spec_replicas=spec, pods=v1, pod_metrics=pod_metrics, custom_metrics=custom)
        if decision.rescale and decision.desiredReplicas != spec:
            self.scale(decision.desiredReplicas)
            self._last_scale_time = now
            self.events_rec.record("HorizontalPodAutoscaler", name, "SuccessfulRescale",
                                   f"New size: {decision.desiredReplicas}; reason: {decision.reason}",
                                   source="horizontal-pod-autoscaler")
        with self.lock:
            self._hpa_history.append(HPAStatusSample(
                time=now, currentReplicas=spec, desiredReplicas=decision.desiredReplicas,
                readyReplicas=self.deployment_status().readyReplicas, currentMetrics=decision.currentMetrics,
                conditions=decision.conditions, lastScaleTime=self._last_scale_time, reason=decision.reason,
                error=decision.error))

    def _metrics_port(self) -> int:
        assert self._template is not None
        return self._template.main.ports.get("metrics", self._target_port)


def _deletion_rank(p: LocalPod) -> tuple[bool, int, bool, float]:
    """ReplicaSet scale-down order: unscheduled < pending < running, not ready < ready, newest first."""
    return (p.node_name is not None, 0 if p.phase == "Pending" else 1, p.ready, -p.creation)


def _requests(template: PodTemplate) -> dict[str, float]:
    c = template.main
    return {"cpu": c.cpu_request or 0.0, "memory": float(c.memory_request or 0)}


def _int_or_percent(v: Any, total: int, round_up: bool) -> int:
    if isinstance(v, str) and v.endswith("%"):
        x = int(v[:-1]) * total
        return -(-x // 100) if round_up else x // 100
    return int(v)


def _port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


def _proc_tree_usage(pids: list[int]) -> tuple[float | None, int | None]:
    cpu = 0.0
    rss = 0
    for pid in pids:
        try:
            pr = psutil.Process(pid)
            t = pr.cpu_times()
            cpu += t.user + t.system
            rss += pr.memory_info().rss
        except psutil.Error:
            continue
    return (cpu, rss) if pids else (None, None)
