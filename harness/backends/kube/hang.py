"""Hang a pod: SIGSTOP its container's processes from the node, and prove it landed.

Why from the node. A container's main process is PID 1 of its PID namespace, and the kernel
drops every signal sent to a namespace's init from inside that namespace unless init installed
a handler for it (SIGSTOP and SIGKILL cannot have one), so `kubectl exec ... kill -STOP -1`
never stops a server that is PID 1 (pid_namespaces(7); kernel/signal.c: `sig_task_ignored`
drops it for a SIGNAL_UNKILLABLE task unless `force`, which `send_signal` sets only when the
sender sits in an ancestor PID namespace). An ephemeral container with `targetContainerName`
does not help: it joins the *target's* PID namespace, where the server is still init. Only a
process in an ancestor namespace, the node's, can stop it.

So the fault creates a short-lived pod on the target's node with `hostPID: true` (the node's
PID namespace) and `privileged: true`, running as root from the target container's own image
(already on the node, `imagePullPolicy: IfNotPresent`; it needs a POSIX `sh`). Its script finds
the container's processes by their cgroup, which names the container ID on containerd, CRI-O
and Docker alike (`.../cri-containerd-<id>.scope`, `.../crio-<id>.scope`, `.../<id>`), sends the
signal, and prints each process's `State:` from /proc/<pid>/status. The fault is `landed` only
when every one of them reads `T (stopped)` and the pod then stops answering. Needs `create`,
`get`, `delete` on pods and `get` on pods/log in the run's namespace, and a namespace whose Pod
Security level admits privileged hostPID pods (the run's own namespace is labelled
`pod-security.kubernetes.io/enforce=privileged` if the first try is refused for that; needs
`patch` on namespaces).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from harness.backends.kube.api import (
    RUN_ID_LABEL,
    K8sObject,
    KubeApi,
    KubeApiError,
    resource_path,
)
from harness.backends.kube.safety import check_chaos
from harness.backends.observe import FaultKind, FaultRecord

log = logging.getLogger("harness.backends.kube")

ROLE_LABEL = "gauntlet.dev/role"
HELPER_ROLE = "fault-helper"
HELPER_CONTAINER = "signal"
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
HELPER_TIMEOUT_S = 90.0
MARK = "gauntlet-hang"

#: Runs in the helper pod (node's PID namespace). Env: CID (container ID), SIG (STOP|CONT),
#: PIDS (optional: only these, if still in the container), HOST_PROC (default /proc: the
#: gopsutil convention; tests point it at a tree mirroring the process they stand up).
SCRIPT = r"""
set -u
P="${HOST_PROC:-/proc}"
in_container() {
  cg=$(cat "$P/$1/cgroup" 2>/dev/null) || return 1
  case "$cg" in *"$CID"*) return 0 ;; esac
  return 1
}
state_of() {
  [ -r "$P/$1/status" ] || return 1
  while read -r key val; do
    if [ "$key" = "State:" ]; then echo "$val"; return 0; fi
  done < "$P/$1/status"
  return 1
}
all_pids() { (cd "$P" && for d in [0-9]*; do echo "$d"; done); }
found=""
cand="${PIDS:-}"
[ -n "$cand" ] || cand=$(all_pids)
round=0
while [ "$round" -lt 5 ]; do
  new=""
  for p in $cand; do
    [ "$p" = "$$" ] && continue
    case " $found " in *" $p "*) continue ;; esac
    in_container "$p" && new="$new $p"
  done
  [ -n "$new" ] || break
  kill -s "$SIG" $new || echo "MARK kill-error sig=$SIG pids=$new"
  found="$found$new"
  [ -z "${PIDS:-}" ] || break
  round=$((round + 1))
  cand=$(all_pids)
done
if [ -z "$found" ]; then echo "MARK none cid=$CID"; exit 3; fi
n=0
while [ "$n" -lt 30 ]; do
  bad=0
  for p in $found; do
    st=$(state_of "$p") || continue
    case "$st" in
      T*) [ "$SIG" = STOP ] || bad=1 ;;
      Z*|X*) ;;
      *) [ "$SIG" = CONT ] || bad=1 ;;
    esac
  done
  [ "$bad" = 0 ] && break
  sleep 0.1
  n=$((n + 1))
done
for p in $found; do echo "MARK pid=$p state=$(state_of "$p" || echo gone)"; done
echo "MARK done sig=$SIG"
exit "$bad"
""".replace("MARK", MARK)

_PID_LINE = re.compile(rf"^{MARK} pid=(\d+) state=(.*)$", re.M)
_TERMINAL = ("Succeeded", "Failed")
_STUCK = {
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerError",
    "CreateContainerConfigError",
    "RunContainerError",
}


class HangTarget(Protocol):
    """What the hang needs of the backend (`KubeBackend`)."""

    api: KubeApi
    context: str
    namespace: str
    chaos_allowed: bool
    poll_s: float


@dataclass
class Target:
    """The container to freeze: where it runs and under which runtime ID."""

    pod: str
    node: str
    container: str
    container_id: str  # without the `containerd://` prefix
    image: str


@dataclass
class Proof:
    """What the helper pod printed: each process's `State:` after the signal."""

    states: dict[int, str] = field(default_factory=dict)
    none_found: bool = False
    log: str = ""

    def all_stopped(self) -> bool:
        live = [s for s in self.states.values() if not s.startswith(("Z", "X", "gone"))]
        return bool(live) and all(s.startswith("T") for s in live)

    def all_running(self) -> bool:
        return bool(self.states) and not any(s.startswith("T") for s in self.states.values())

    def summary(self) -> str:
        return ", ".join(f"{p}: {s}" for p, s in sorted(self.states.items())) or "no process"


def parse_proof(text: str) -> Proof:
    return Proof(
        states={int(m.group(1)): m.group(2).strip() for m in _PID_LINE.finditer(text)},
        none_found=f"{MARK} none " in text,
        log=text,
    )


def target_of(pod: K8sObject) -> Target | str:
    """The pod's first container (the server), or why it cannot be frozen."""
    name = (pod.get("metadata") or {}).get("name", "")
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        return "pod has no containers"
    container = containers[0]
    status = next(
        (
            s
            for s in (pod.get("status") or {}).get("containerStatuses") or []
            if s.get("name") == container.get("name")
        ),
        None,
    )
    cid = str((status or {}).get("containerID") or "").split("://")[-1]
    if not spec.get("nodeName") or not cid or "running" not in ((status or {}).get("state") or {}):
        return f"container {container.get('name')} is not running (no node or containerID yet)"
    return Target(name, spec["nodeName"], container["name"], cid, container.get("image", ""))


def helper_pod(
    name: str, target: Target, sig: Literal["STOP", "CONT"], pids: str = ""
) -> K8sObject:
    """The short-lived pod that signals `target` from its node's PID namespace."""
    env = [{"name": "CID", "value": target.container_id}, {"name": "SIG", "value": sig}]
    if pids:
        env.append({"name": "PIDS", "value": pids})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {ROLE_LABEL: HELPER_ROLE},
            "annotations": {"gauntlet.dev/fault": f"SIG{sig} {target.pod}/{target.container}"},
        },
        "spec": {
            "nodeName": target.node,  # no scheduler: it must run where the container runs
            "hostPID": True,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],  # the node may be tainted mid-scenario
            "containers": [
                {
                    "name": HELPER_CONTAINER,
                    "image": target.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", SCRIPT],
                    "env": env,
                    "securityContext": {"privileged": True, "runAsUser": 0, "runAsNonRoot": False},
                }
            ],
        },
    }


def run_helper(
    backend: HangTarget, target: Target, sig: Literal["STOP", "CONT"], pids: str = ""
) -> Proof | str:
    """Create the helper pod, wait for it to finish, read its log, delete it. A string: why
    no proof came back."""
    name = f"gauntlet-sig{sig.lower()}-{uuid.uuid4().hex[:8]}"
    path = resource_path("v1", "Pod", backend.namespace)
    body = helper_pod(name, target, sig, pids)
    try:
        try:
            backend.api.create(path, body)
        except KubeApiError as exc:
            if (
                exc.status != 403
                or "PodSecurity" not in exc.message
                or not _allow_privileged(backend)
            ):
                return f"helper pod refused: {exc}{_psa_fix(exc)}"
            backend.api.create(path, body)
        outcome = _wait_done(backend, name, time.monotonic() + HELPER_TIMEOUT_S)
        if outcome:
            return outcome
        text = backend.api.get_text(
            resource_path("v1", "Pod", backend.namespace, name, "log"), container=HELPER_CONTAINER
        )
    except KubeApiError as exc:
        return f"helper pod {name}: {exc}"
    finally:
        _delete(backend, name)
    return parse_proof(text)


def _wait_done(backend: HangTarget, name: str, deadline: float) -> str:
    """'' once the helper pod has finished, else why it never did."""
    path = resource_path("v1", "Pod", backend.namespace, name)
    waiting = "not started"
    while True:
        obj = backend.api.get(path)
        st = obj.get("status") or {}
        if st.get("phase") in _TERMINAL:
            return ""
        for cs in st.get("containerStatuses") or []:
            w = (cs.get("state") or {}).get("waiting") or {}
            if w.get("reason"):
                waiting = f"{w['reason']}: {w.get('message', '')}".strip(": ")
                if w["reason"] in _STUCK:
                    return f"helper pod {name} cannot start ({waiting})"
        if time.monotonic() > deadline:
            return f"helper pod {name} not finished after {HELPER_TIMEOUT_S:.0f}s ({waiting})"
        time.sleep(min(backend.poll_s, 1.0))


def _delete(backend: HangTarget, name: str) -> None:
    try:
        backend.api.delete(
            resource_path("v1", "Pod", backend.namespace, name), gracePeriodSeconds=0
        )
    except KubeApiError as exc:
        if exc.status != 404:
            log.warning("could not delete helper pod %s/%s: %s", backend.namespace, name, exc)


def _allow_privileged(backend: HangTarget) -> bool:
    """Label the run's own namespace Pod Security `privileged` (never another namespace)."""
    path = resource_path("v1", "Namespace", name=backend.namespace)
    try:
        ns = backend.api.get(path)
        if RUN_ID_LABEL not in ((ns.get("metadata") or {}).get("labels") or {}):
            return False
        log.warning(
            "labelling namespace %s %s=privileged for the hang's hostPID helper pod",
            backend.namespace,
            PSA_ENFORCE,
        )
        backend.api.merge_patch(path, {"metadata": {"labels": {PSA_ENFORCE: "privileged"}}})
        return True
    except KubeApiError as exc:
        log.warning("could not relabel namespace %s: %s", backend.namespace, exc)
        return False


def _psa_fix(exc: KubeApiError) -> str:
    if "PodSecurity" not in exc.message:
        return ""
    return (
        f" (the namespace's Pod Security level must admit privileged hostPID pods: "
        f"{PSA_ENFORCE}=privileged)"
    )


def _record(
    started: float, pod: str, landed: bool, detail: str, kind: FaultKind = FaultKind.HANG
) -> FaultRecord:
    return FaultRecord(
        kind=kind,
        target=pod,
        started_at=started,
        ended_at=time.time(),
        affected=[pod] if landed else [],
        landed=landed,
        detail=detail,
    )


#: per backend: pod -> the container and PIDs `hang_pod` stopped, for `resume_pod`
_hung: weakref.WeakKeyDictionary[HangTarget, dict[str, tuple[Target, str]]] = (
    weakref.WeakKeyDictionary()
)


def hang_pod(backend: HangTarget, pod: str, unresponsive: Callable[[], bool]) -> FaultRecord:
    """SIGSTOP every process of the pod's first container from its node; `landed` only when
    each one reads `State: T (stopped)` and `unresponsive()` (the pod no longer answers)."""
    check_chaos("hang_pod", backend.context, backend.chaos_allowed)
    started = time.time()
    try:
        target = target_of(backend.api.get(resource_path("v1", "Pod", backend.namespace, pod)))
    except KubeApiError as exc:
        return _record(started, pod, False, f"reading the pod failed: {exc}")
    if isinstance(target, str):
        return _record(started, pod, False, target)
    log.warning(
        "hanging pod %s/%s: SIGSTOP of container %s (%s) from node %s (hostPID helper pod)",
        backend.namespace,
        pod,
        target.container,
        target.container_id[:12],
        target.node,
    )
    proof = run_helper(backend, target, "STOP")
    if isinstance(proof, str):
        return _record(started, pod, False, f"did not land: {proof}")
    if proof.none_found:
        return _record(
            started,
            pod,
            False,
            f"did not land: no process of container {target.container_id[:12]} on node "
            f"{target.node} (restarted or gone?)",
        )
    pids = " ".join(str(p) for p in sorted(proof.states))
    _hung.setdefault(backend, {})[pod] = (target, pids)
    if not proof.all_stopped():
        return _record(started, pod, False, f"did not land: not all stopped ({proof.summary()})")
    if not unresponsive():
        return _record(
            started,
            pod,
            False,
            f"did not land: processes stopped ({proof.summary()}) but the pod still answers",
        )
    return _record(
        started,
        pod,
        True,
        f"SIGSTOP from node {target.node}: {proof.summary()}; the pod stopped answering",
    )


def resume_pod(backend: HangTarget, pod: str) -> FaultRecord:
    """SIGCONT the PIDs `hang_pod` stopped, where they are still in the same container (a
    liveness kill restarts it under a new ID: then there is nothing left to resume)."""
    started = time.time()
    hung = _hung.get(backend, {}).pop(pod, None)
    if hung is None:
        return FaultRecord(
            kind=FaultKind.RESTORE,
            target=pod,
            started_at=started,
            ended_at=time.time(),
            landed=True,
            detail="nothing to resume",
        )
    target, pids = hung
    proof = run_helper(backend, target, "CONT", pids)
    if isinstance(proof, str):
        landed, detail = False, f"resume failed: {proof}"
    elif proof.none_found:
        landed, detail = True, "container already gone or restarted: nothing to resume"
    else:
        landed = proof.all_running()
        detail = f"SIGCONT from node {target.node}: {proof.summary()}"
    return _record(started, pod, landed, detail, FaultKind.RESTORE)
