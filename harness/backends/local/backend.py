"""LocalBackend: the rendered manifests run on this machine, with a kubelet's and controllers' rules."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

from harness.backends.base import Backend, BackendError
from harness.backends.local import assets, cgroups, cleanup, scheduler
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
    default_entrypoint,
    expand,
    gauntlet_command,
    parse_rollout,
    parse_template,
    resolve_env,
)
from harness.backends.observe import (
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
                 namespace: str = "default") -> None:
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
        self._hash = uuid.uuid4().hex[:10]
        self._cpu_prev: dict[str, tuple[float, float]] = {}
        self._last_scale_time: float | None = None
        self._mem_warned: set[str] = set()
        cleanup.register(self)

    # lifecycle ---------------------------------------------------------------------------------
    def deploy(self, bundle: ManifestBundle) -> None:
        if self._bundle is not None:
            raise BackendError("this LocalBackend already has a deployment; make a new one")
        dep = bundle.deployment
        self._template = parse_template(dep, bundle.source)
        rollout = parse_rollout(dep, bundle.source)
        self.rollout = rollout
        c = self._template.main
        if self.runtime == "process" and not c.command and default_entrypoint(c.image) is None:
            raise InputError("the process runtime needs the container's command (there is no image to read "
                             "its ENTRYPOINT from)", file=bundle.source or None,
                             field="spec.template.spec.containers[0].command",
                             fix="set command/args, or use the docker runtime")
        self._bundle = bundle
        self.deployment_name = (dep.get("metadata") or {}).get("name", "deployment")
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
        self.events_rec.record("Deployment", self.deployment_name, "ScalingReplicaSet",
                               f"Scaled up replica set {self.deployment_name}-{self._hash} to {rollout.replicas}",
                               source="deployment-controller")
        for target, name in ((self._controller_loop, "deployment-controller"), (self._sampler_loop, "sampler")):
            t = threading.Thread(target=target, name=f"gauntlet-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if bundle.hpa is not None:
            t = threading.Thread(target=self._hpa_loop, args=(bundle.hpa,), name="gauntlet-hpa", daemon=True)
            t.start()
            self._threads.append(t)
        self._wake.set()

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
        return "; ".join(f"{p.name}: {p.phase} ready={p.ready} restarts={p.restartCount if False else p.restart_count}"
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
        with self.lock:
            active = [p for p in self._pods.values() if p.deletion is None]
            ready = sum(1 for p in active if p.ready)
            return DeploymentStatus(replicas=len(active), readyReplicas=ready, availableReplicas=ready,
                                    updatedReplicas=len(active), unavailableReplicas=max(0, self.spec_replicas - ready),
                                    specReplicas=self.spec_replicas)

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
        if replicas < 0:
            raise InputError("replicas must be >= 0", field="replicas", fix="pass a non-negative count")
        with self.lock:
            old = self.spec_replicas
            self.spec_replicas = replicas
        if old != replicas:
            self.events_rec.record("Deployment", getattr(self, "deployment_name", "deployment"), "ScalingReplicaSet",
                                   f"Scaled {'up' if replicas > old else 'down'} replica set to {replicas}",
                                   source="deployment-controller")
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
        k = self._kubelets.get(pod)
        if k is None:
            return
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
                    self._kubelets.pop(name, None)
            active = [p for p in self._pods.values() if p.deletion is None]
            diff = self.spec_replicas - len(active)
        if diff > 0:
            for _ in range(diff):
                self._create_pod()
        elif diff < 0:
            # ReplicaSet scale-down order: unscheduled < not ready < ready, newest first
            victims = sorted(active, key=lambda p: (p.node_name is not None, p.ready, -p.creation))[:-diff]
            for p in victims:
                self._delete(p.name, None)
        self._schedule_pending()
        self._refresh_endpoints()

    def _create_pod(self) -> None:
        assert self._template is not None
        name = f"{self.deployment_name}-{self._hash}-{uuid.uuid4().hex[:5]}"
        labels = {**self._template.labels, "pod-template-hash": self._hash}
        pod = LocalPod(name=name, namespace=self.namespace, labels=labels, template=self._template, creation=time.time())
        pod.set_condition("PodScheduled", "False", "Unschedulable", "waiting for the scheduler")
        with self.lock:
            self._pods[name] = pod
        self.events_rec.record("ReplicaSet", f"{self.deployment_name}-{self._hash}", "SuccessfulCreate",
                               f"Created pod: {name}", source="replicaset-controller")

    def _schedule_pending(self) -> None:
        assert self._template is not None
        c = self._template.main
        req = {"cpu": c.cpu_request or 0.0, "memory": float(c.memory_request or 0)}
        with self.lock:
            pending = [p for p in self._pods.values() if p.node_name is None and p.deletion is None]
            pending.sort(key=lambda p: p.creation)
        for p in pending:
            with self.lock:
                existing = [{"nodeName": q.node_name, "labels": q.labels, **req} for q in self._pods.values()
                            if q.node_name and q.deletion is None]
                node, why = scheduler.schedule({"metadata": {"labels": p.labels}, "spec": self._template.spec},
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
            f.write(f"--- container start {time.time():.3f} restart {pod.restart_count}\n".encode())
        if self.runtime == "docker":
            return DockerContainer(f"gauntlet-{self.run.split('@')[0]}-{pod.name}-{pod.restart_count}"[:120],
                                   c.image, command, args, env, c.working_dir, c.memory_limit, c.cpu_limit,
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
        assert self._template is not None
        c = self._template.main
        now = time.time()
        with self.lock:
            running = [(p, p.handle) for p in self._pods.values() if p.handle is not None]
        out: list[ResourceSample] = []
        for p, handle in running:
            cg = getattr(handle, "cgroup", None)
            cpu_s: float | None = None
            mem: int | None = None
            ooms: int | None = None
            if cg is not None:
                ns = cg.cpu_usage_ns()
                cpu_s = ns / 1e9 if ns is not None else None
                mem = cg.working_set()
                ooms = cg.oom_kills()
            else:
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
                                      oom_kills=ooms))
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
        pods = self.pods()
        v1 = [_v1_pod(p) for p in pods]
        metrics = ctl.metrics
        window = 15.0
        pod_metrics = []
        latest: dict[str, ResourceSample] = {}
        for s in self.resource_samples(now - window):
            latest[s.pod] = s
        for p in pods:
            sample = latest.get(p.name)
            if sample is None or sample.cpu_cores is None:
                continue
            usage = {"cpu": f"{int(sample.cpu_cores * 1000)}m"}
            if sample.memory_bytes is not None:
                usage["memory"] = str(sample.memory_bytes)
            pod_metrics.append({"metadata": {"name": p.name}, "timestamp": sample.time, "window": "1s",
                                "containers": [{"name": p.containerStatuses[0].name, "usage": usage}]})
        wanted = [m["pods"]["metric"]["name"] for m in metrics if m.get("type") == "Pods"]
        custom: dict[str, dict[str, dict[str, float]]] = {"pods": {}}
        if wanted:
            for p in pods:
                if p.phase != "Running" or p.podIP is None or p.deletionTimestamp is not None:
                    continue
                values = _scrape(f"http://{p.podIP}:{self._metrics_port()}/metrics")
                for mname in wanted:
                    v = _metric_value(values, mname)
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


def _v1_pod(p: Pod) -> dict[str, Any]:
    def iso(t: float | None) -> float | None:
        return t

    return {
        "metadata": {"name": p.name, "namespace": p.namespace, "labels": p.labels,
                     "creationTimestamp": p.creationTimestamp, "deletionTimestamp": iso(p.deletionTimestamp)},
        "spec": {"nodeName": p.nodeName},
        "status": {"phase": p.phase, "startTime": iso(p.startTime), "podIP": p.podIP,
                   "conditions": [c.model_dump() for c in p.conditions]},
    }


def _scrape(url: str) -> dict[str, float]:
    """Prometheus text exposition -> {'name{labels}': value, 'name': sum over label sets}."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            key, value = line.rsplit(" ", 1) if "}" not in line else (line[: line.rindex("}") + 1], line[line.rindex("}") + 1:].split()[0])
            v = float(value)
        except ValueError:
            continue
        out[key] = v
        base = key.split("{", 1)[0]
        if "{" in key:
            out[base] = out.get(base, 0.0) + v
    return out


def _metric_value(values: dict[str, float], name: str) -> float | None:
    """A Pods metric: its exposition name, with ':' or '_' spellings, or a '+'-joined sum."""
    total = 0.0
    for part in name.split("+"):
        for cand in (part, part.replace(":", "_"), part.replace("_", ":", 1)):
            if cand in values:
                total += values[cand]
                break
        else:
            return None
    return total
