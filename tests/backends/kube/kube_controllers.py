"""The controllers' part, played against the mock API server: scheduler + kubelet + Deployment
controller + taint manager, reduced to what the kube backend observes."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from kube_mock import MockServer, now_rfc3339

ZONE = "topology.kubernetes.io/zone"
HASH = "pod-template-hash"
K8sObject = dict[str, Any]


def template_hash(dep: K8sObject) -> str:
    return hashlib.sha256(
        json.dumps((dep.get("spec") or {}).get("template") or {}, sort_keys=True).encode()
    ).hexdigest()[:10]


def make_nodes(
    server: MockServer, zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c"), per_zone: int = 1
) -> None:
    def add() -> None:
        for z in zones:
            for i in range(per_zone):
                server.api.put(
                    "Node",
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {"name": f"node-{z}-{i}", "labels": {ZONE: z}},
                        "spec": {},
                        "status": {
                            "conditions": [{"type": "Ready", "status": "True"}],
                            "allocatable": {"cpu": "4", "memory": "8Gi"},
                        },
                    },
                )

    server.call(add)


@dataclass
class FakeControllers:
    server: MockServer
    namespace_prefix: str = "gauntlet-"
    ready_after_ticks: int = 3  # ticks from creation to Ready
    stuck: bool = False  # never schedule: FailedScheduling + ProgressDeadlineExceeded
    tick_s: float = 0.05
    oom_pod_index: int | None = None  # this pod's container reports OOMKilled/137 once
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ages: dict[str, int] = field(default_factory=dict)
    _seq: itertools.count = field(default_factory=itertools.count)
    _events: itertools.count = field(default_factory=itertools.count)
    errors: list[BaseException] = field(default_factory=list)

    def start(self) -> FakeControllers:
        self._thread = threading.Thread(target=self._run, name="fake-controllers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.server.call(self.tick)
            except BaseException as exc:  # surfaced by the tests
                self.errors.append(exc)

    # one reconcile pass (runs on the server loop, under its lock) ----------------------------
    def tick(self) -> None:
        api = self.server.api
        nodes = api.items("Node")
        tainted = {
            n["metadata"]["name"]
            for n in nodes
            if any(
                t.get("effect") == "NoExecute" for t in (n.get("spec") or {}).get("taints") or []
            )
        }
        schedulable = [
            n["metadata"]["name"]
            for n in nodes
            if not (n.get("spec") or {}).get("unschedulable")
            and n["metadata"]["name"] not in tainted
        ]
        for dep in api.items("Deployment"):
            ns = dep["metadata"]["namespace"]
            if not ns.startswith(self.namespace_prefix):
                continue
            self._reconcile(dep, ns, tainted, schedulable)

    def _event(
        self,
        ns: str,
        kind: str,
        name: str,
        reason: str,
        message: str,
        type_: str = "Normal",
        source: str = "kubelet",
    ) -> None:
        n = next(self._events)
        self.server.api.put(
            "Event",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{n}", "namespace": ns, "uid": f"ev-{n}"},
                "involvedObject": {"kind": kind, "name": name, "namespace": ns},
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": now_rfc3339(),
                "lastTimestamp": now_rfc3339(),
                "source": {"component": source},
            },
        )

    def _reconcile(
        self, dep: K8sObject, ns: str, tainted: set[str], schedulable: list[str]
    ) -> None:
        api = self.server.api
        name = dep["metadata"]["name"]
        want = int((dep.get("spec") or {}).get("replicas", 1))
        labels = dict(
            ((dep["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        )
        pods = [
            p
            for p in api.items("Pod", ns)
            if p["metadata"].get("labels", {}).get("gauntlet.test/owner") == name
        ]
        # taint manager: NoExecute evicts pods not tolerating it
        for p in pods:
            if p["spec"].get("nodeName") in tainted:
                api.remove("Pod", ns, p["metadata"]["name"])
                self._event(
                    ns,
                    "Pod",
                    p["metadata"]["name"],
                    "TaintManagerEviction",
                    "Marking for deletion",
                    source="taint-eviction-controller",
                )
        pods = [
            p
            for p in api.items("Pod", ns)
            if p["metadata"].get("labels", {}).get("gauntlet.test/owner") == name
        ]
        tpl = template_hash(dep)
        new = [p for p in pods if p["metadata"]["labels"].get(HASH) == tpl]
        old = [p for p in pods if p["metadata"]["labels"].get(HASH) != tpl]
        # a rolling update, maxSurge 1 / maxUnavailable 0: a new pod, then an old one
        # once it is Ready
        if old:
            if len(new) < want and len(pods) < want + 1:
                pods.append(self._new_pod(ns, name, labels, tpl))
            if sum(1 for p in pods if _ready(p)) > want:
                api.remove("Pod", ns, old[0]["metadata"]["name"])
                pods.remove(old[0])
        else:  # replica set: create / delete toward spec.replicas
            while len(pods) < want:
                pods.append(self._new_pod(ns, name, labels, tpl))
            for p in pods[want:]:
                api.remove("Pod", ns, p["metadata"]["name"])
            pods = pods[:want]
        # scheduler + kubelet
        ready = 0
        for idx, p in enumerate(pods):
            pname = p["metadata"]["name"]
            age = self._ages.get(pname, 0) + 1
            self._ages[pname] = age
            status = self._pod_status(ns, p, age, idx, schedulable)
            if status.get("_ready"):
                ready += 1
            status.pop("_ready", None)
            api.put("Pod", {"metadata": {"name": pname, "namespace": ns}, **status})
        updated = sum(1 for p in pods if p["metadata"]["labels"].get(HASH) == tpl)
        dep_status: K8sObject = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, want - ready),
        }
        if self.stuck:
            dep_status["conditions"] = [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{name}-abc" has timed out progressing.',
                }
            ]
        api.put("Deployment", {"metadata": {"name": name, "namespace": ns}, "status": dep_status})
        for hpa in api.items("HorizontalPodAutoscaler", ns):
            api.put(
                "HorizontalPodAutoscaler",
                {
                    "metadata": {"name": hpa["metadata"]["name"], "namespace": ns},
                    "status": {"currentReplicas": len(pods), "desiredReplicas": want},
                },
            )

    def _new_pod(self, ns: str, name: str, labels: dict[str, str], tpl: str) -> K8sObject:
        pname = f"{name}-{next(self._seq):05d}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pname,
                "namespace": ns,
                "labels": {**labels, "gauntlet.test/owner": name, HASH: tpl},
            },
            "spec": {
                "containers": [
                    {
                        "name": "inference",
                        "ports": [{"containerPort": 8000}],
                        "resources": {
                            "requests": {"cpu": "500m"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    }
                ]
            },
            "status": {"phase": "Pending"},
        }
        self.server.api.put("Pod", pod)
        self._ages[pname] = 0
        return pod

    def _pod_status(
        self, ns: str, p: K8sObject, age: int, idx: int, schedulable: list[str]
    ) -> K8sObject:
        pname = p["metadata"]["name"]
        node = p["spec"].get("nodeName")
        out: K8sObject = {}
        if node is None:
            if self.stuck or not schedulable:
                if age == 1:
                    self._event(
                        ns,
                        "Pod",
                        pname,
                        "FailedScheduling",
                        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                        "Warning",
                        "default-scheduler",
                    )
                return {
                    "status": {
                        "phase": "Pending",
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "lastTransitionTime": now_rfc3339(),
                            }
                        ],
                    }
                }
            node = schedulable[int(pname.rsplit("-", 1)[1]) % len(schedulable)]
            out["spec"] = {"nodeName": node}
            self._event(
                ns,
                "Pod",
                pname,
                "Scheduled",
                f"Successfully assigned {ns}/{pname} to {node}",
                source="default-scheduler",
            )
        conds = {c["type"]: c for c in (p.get("status") or {}).get("conditions") or []}

        def cond(type_: str, status: str) -> None:
            if conds.get(type_, {}).get("status") != status:
                conds[type_] = {
                    "type": type_,
                    "status": status,
                    "lastTransitionTime": now_rfc3339(),
                }

        cond("PodScheduled", "True")
        cond("Initialized", "True")
        ready = age >= self.ready_after_ticks
        cond("ContainersReady", "True" if ready else "False")
        cond("Ready", "True" if ready else "False")
        restarts, last_state = 0, {}
        if self.oom_pod_index == idx and age >= 2:
            restarts = 1
            last_state = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "finishedAt": now_rfc3339(),
                    "startedAt": now_rfc3339(-5),
                }
            }
        out["status"] = {
            "phase": "Running",
            "podIP": f"10.0.0.{idx + 1}",
            "startTime": now_rfc3339(),
            "conditions": list(conds.values()),
            "containerStatuses": [
                {
                    "name": "inference",
                    "ready": ready,
                    "started": True,
                    "restartCount": restarts,
                    "image": "gauntlet-inference:dev",
                    "imageID": "sha256:0",
                    "state": {"running": {"startedAt": now_rfc3339()}},
                    "lastState": last_state,
                }
            ],
        }
        out["_ready"] = ready
        return out


def _ready(p: K8sObject) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (p.get("status") or {}).get("conditions") or []
    )
