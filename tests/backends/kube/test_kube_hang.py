"""The hang fault (kube.hang): SIGSTOP from the node's PID namespace, with proof read back.

A fake kubelet plays the node: when the backend creates its hostPID helper pod, it runs that
pod's own shell script for real against local processes standing for the container (a tiny HTTP
server, as PID 1 of a fresh PID namespace where `unshare` works), so the signal really lands and
the `State:` proof is read back from /proc. The fake resolves container IDs to PIDs through a
mirror of /proc whose `cgroup` files name the container (what containerd writes), pointed at by
HOST_PROC; `status` there links to the real /proc/<pid>/status."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp.web
import kmock
import pytest
from kube_mock import MockServer
from kube_objects import MakeBackend

from harness.backends.kind import KindBackend
from harness.backends.kube import KubeBackend, hang
from harness.backends.kube.api import K8sObject
from harness.backends.observe import FaultRecord
from harness.profile import load_profile
from harness.scenarios import probe_timing

CID = "4f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f1e2d3c"
NODE = "node-zone-a-0"
IMAGE = "gauntlet-inference:dev"


def proc_state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split(":", 1)[1].strip()
    return "?"


def answers(port: int, timeout_s: float = 1.0) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout_s).close()
        return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, TimeoutError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """The 'container': an HTTP server; `pid` as the node sees it; PID 1 of its own PID
    namespace when `in_pidns`."""

    proc: subprocess.Popen[bytes]
    pid: int
    port: int
    in_pidns: bool


def _unshare_works() -> bool:
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    res = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "test $$ = 1"],
        capture_output=True,
        timeout=10,
    )
    return res.returncode == 0


UNSHARE = _unshare_works()


def _child_pid(parent: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise RuntimeError(f"unshare {parent} started no child")


def start_server(pidns: bool) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    if pidns:
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = _child_pid(proc.pid) if pidns else proc.pid
    deadline = time.monotonic() + 20
    while not answers(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    return Server(proc, pid, port, pidns)


def stop_server(s: Server) -> None:
    for pid in (s.pid, s.proc.pid):
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    s.proc.wait(10)


@pytest.fixture()
def container() -> Iterator[Server]:
    s = start_server(pidns=UNSHARE)
    yield s
    stop_server(s)


@pytest.fixture()
def decoy() -> Iterator[subprocess.Popen[bytes]]:
    """Another container's process on the same node: must never be touched."""
    p = subprocess.Popen(["sleep", "300"])
    yield p
    p.kill()
    p.wait(10)


# ------------------------------------------------------------------------------------------
# the kernel fact the design rests on


@pytest.mark.skipif(not UNSHARE, reason="needs root and unshare/nsenter (new PID namespace)")
def test_pid1_ignores_sigstop_from_inside_its_namespace_but_not_from_the_parent() -> None:
    """What today's `kubectl exec ... kill -STOP -1` does to a server that is PID 1: nothing.
    From the parent (the node's) namespace the same SIGSTOP lands."""
    s = start_server(pidns=True)
    try:
        inside = subprocess.run(
            ["nsenter", "-t", str(s.pid), "-p", "-m", "sh", "-c", "kill -STOP -1; kill -STOP 1"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert inside.returncode == 0, inside.stderr  # the kernel accepts it, then drops it
        time.sleep(0.3)
        assert not proc_state(s.pid).startswith("T")
        assert answers(s.port)
        os.kill(s.pid, signal.SIGSTOP)  # from the ancestor namespace
        deadline = time.monotonic() + 5
        while not proc_state(s.pid).startswith("T") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc_state(s.pid) == "T (stopped)"
        assert not answers(s.port, timeout_s=1.0)
    finally:
        stop_server(s)


# ------------------------------------------------------------------------------------------
# the fake kubelet


@dataclass
class FakeKubelet:
    """Runs each helper pod's command on this machine as the node would: in the node's PID
    namespace (this one), with HOST_PROC pointing at a /proc mirror that maps container IDs to
    the PIDs in `containers`; the log is served at pods/<name>/log."""

    server: MockServer
    namespace: str
    root: Path
    containers: dict[str, list[int]]
    waiting_reason: str = ""  # set: the helper pod never starts (e.g. ErrImageNeverPull)
    real_proc: bool = False  # the script reads this machine's /proc (real cgroups), no mirror
    pods: list[K8sObject] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FakeKubelet:
        self.server.api.route(
            rf"^/api/v1/namespaces/{self.namespace}/pods/([^/]+)/log$", self._serve_log
        )
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    async def _serve_log(self, request: aiohttp.web.BaseRequest, m: Any) -> aiohttp.web.Response:
        assert request.query.get("container") == hang.HELPER_CONTAINER
        return aiohttp.web.Response(text=self.logs.get(m.group(1), ""), content_type="text/plain")

    def _run(self) -> None:
        seen: set[str] = set()
        while not self._stop.wait(0.02):
            try:
                for pod in self.server.call(self.server.api.items, "Pod", self.namespace):
                    labels = pod["metadata"].get("labels") or {}
                    name = pod["metadata"]["name"]
                    if labels.get(hang.ROLE_LABEL) == hang.HELPER_ROLE and name not in seen:
                        seen.add(name)
                        self.pods.append(pod)
                        self._run_pod(pod)
            except BaseException as exc:
                self.errors.append(exc)

    def _mirror(self) -> Path:
        root = self.root / f"proc{len(self.pods)}"
        root.mkdir()
        for cid, pids in self.containers.items():
            for pid in pids:
                d = root / str(pid)
                d.mkdir()
                scope = f"kubepods-besteffort-pod1.slice/cri-containerd-{cid}.scope"
                (d / "cgroup").write_text(f"0::/../../kubepods.slice/{scope}\n")
                (d / "status").symlink_to(f"/proc/{pid}/status")
        return root

    def _run_pod(self, pod: K8sObject) -> None:
        meta = {"name": pod["metadata"]["name"], "namespace": self.namespace}
        (c,) = pod["spec"]["containers"]
        if self.waiting_reason:
            waiting = {"reason": self.waiting_reason, "message": f'image "{c["image"]}" absent'}
            cs = [{"name": c["name"], "state": {"waiting": waiting}}]
            status = {"phase": "Pending", "containerStatuses": cs}
            self.server.call(self.server.api.put, "Pod", {"metadata": meta, "status": status})
            return
        env = {e["name"]: e["value"] for e in c.get("env") or []}
        if not self.real_proc:
            env["HOST_PROC"] = str(self._mirror())
        res = subprocess.run(
            c["command"], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True
        )
        self.logs[meta["name"]] = res.stdout + res.stderr
        status = {
            "phase": "Succeeded" if res.returncode == 0 else "Failed",
            "containerStatuses": [
                {"name": c["name"], "state": {"terminated": {"exitCode": res.returncode}}}
            ],
        }
        self.server.call(self.server.api.put, "Pod", {"metadata": meta, "status": status})


def target_pod(namespace: str, name: str = "gauntlet-inference-0") -> K8sObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "x"}},
        "spec": {
            "nodeName": NODE,
            "containers": [
                {"name": "inference", "image": IMAGE, "ports": [{"containerPort": 8000}]}
            ],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "inference",
                    "containerID": f"containerd://{CID}",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    "ready": True,
                }
            ],
        },
    }


@pytest.fixture()
def setup(
    make_backend: MakeBackend, server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[KubeBackend, FakeKubelet]]:
    b = make_backend()
    server.api.put("Pod", target_pod(b.namespace))
    kubelet = FakeKubelet(server, b.namespace, tmp_path, {}).start()
    yield b, kubelet
    kubelet.stop()
    assert not kubelet.errors, kubelet.errors


def point_at(monkeypatch: pytest.MonkeyPatch, b: KubeBackend, port: int) -> None:
    monkeypatch.setattr(b, "pod_url", lambda pod: f"http://127.0.0.1:{port}")


def helper_pods_left(server: MockServer, ns: str) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in server.api.items("Pod", ns)
        if (p["metadata"].get("labels") or {}).get(hang.ROLE_LABEL) == hang.HELPER_ROLE
    ]


# ------------------------------------------------------------------------------------------
# the fault


def test_hang_stops_the_container_from_the_node_and_proves_it(
    setup: tuple[KubeBackend, FakeKubelet],
    container: Server,
    decoy: subprocess.Popen[bytes],
    server: MockServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, kubelet = setup
    kubelet.containers = {CID: [container.pid], "0" * 64: [decoy.pid]}
    point_at(monkeypatch, b, container.port)
    rec = b.hang_pod("gauntlet-inference-0")
    assert rec.landed, rec.detail
    assert rec.kind == "hang" and rec.affected == ["gauntlet-inference-0"]
    assert f"{container.pid}: T (stopped)" in rec.detail and NODE in rec.detail
    assert proc_state(container.pid) == "T (stopped)"
    assert not answers(container.port)
    assert not proc_state(decoy.pid).startswith("T")  # another container's process
    (helper,) = kubelet.pods
    spec = helper["spec"]
    assert spec["hostPID"] is True and spec["nodeName"] == NODE
    assert spec["restartPolicy"] == "Never"
    (c,) = spec["containers"]
    assert c["image"] == IMAGE and c["imagePullPolicy"] == "IfNotPresent"
    assert c["securityContext"]["privileged"] is True and c["securityContext"]["runAsUser"] == 0
    assert {"name": "CID", "value": CID} in c["env"]
    assert {"name": "SIG", "value": "STOP"} in c["env"]
    assert helper_pods_left(server, b.namespace) == []  # deleted once its log was read


def test_resume_continues_exactly_the_stopped_pids(
    setup: tuple[KubeBackend, FakeKubelet],
    container: Server,
    server: MockServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, kubelet = setup
    kubelet.containers = {CID: [container.pid]}
    point_at(monkeypatch, b, container.port)
    assert b.hang_pod("gauntlet-inference-0").landed
    rec = hang.resume_pod(b, "gauntlet-inference-0")
    assert rec.landed and rec.kind == "restore", rec.detail
    assert not proc_state(container.pid).startswith("T")
    assert answers(container.port, timeout_s=3.0)
    cont = kubelet.pods[-1]["spec"]["containers"][0]
    assert {"name": "SIG", "value": "CONT"} in cont["env"]
    assert {"name": "PIDS", "value": str(container.pid)} in cont["env"]
    assert hang.resume_pod(b, "gauntlet-inference-0").detail == "nothing to resume"
    assert helper_pods_left(server, b.namespace) == []


def test_hang_did_not_land_when_the_helper_finds_no_process(
    setup: tuple[KubeBackend, FakeKubelet],
    container: Server,
    decoy: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, kubelet = setup
    kubelet.containers = {"0" * 64: [decoy.pid]}  # the node runs no process of CID
    point_at(monkeypatch, b, container.port)
    rec = b.hang_pod("gauntlet-inference-0")
    assert not rec.landed and rec.affected == []
    assert "did not land" in rec.detail and "no process of container" in rec.detail
    assert answers(container.port)
    assert not proc_state(decoy.pid).startswith("T")


def test_hang_did_not_land_when_stopped_processes_are_not_the_server(
    setup: tuple[KubeBackend, FakeKubelet],
    container: Server,
    decoy: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stopped process is not enough: the pod must stop answering too."""
    b, kubelet = setup
    kubelet.containers = {CID: [decoy.pid]}
    point_at(monkeypatch, b, container.port)
    rec = b.hang_pod("gauntlet-inference-0")
    assert not rec.landed
    assert "still answers" in rec.detail and f"{decoy.pid}: T (stopped)" in rec.detail
    os.kill(decoy.pid, signal.SIGCONT)


def test_hang_did_not_land_when_the_helper_pod_cannot_start(
    setup: tuple[KubeBackend, FakeKubelet], container: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    b, kubelet = setup
    kubelet.containers = {CID: [container.pid]}
    kubelet.waiting_reason = "ErrImageNeverPull"
    point_at(monkeypatch, b, container.port)
    rec = b.hang_pod("gauntlet-inference-0")
    assert not rec.landed and "cannot start (ErrImageNeverPull" in rec.detail
    assert not proc_state(container.pid).startswith("T")


def test_hang_refuses_a_pod_without_a_running_container(
    setup: tuple[KubeBackend, FakeKubelet], server: MockServer
) -> None:
    b, kubelet = setup
    pod = target_pod(b.namespace, "pending-0")
    pod["status"] = {"phase": "Pending"}
    server.api.put("Pod", pod)
    rec = b.hang_pod("pending-0")
    assert not rec.landed and "not running" in rec.detail
    assert kubelet.pods == []  # nothing was created


def test_kind_uses_the_same_node_side_hang() -> None:
    """kind used to `docker exec` the node and stop only the main PID via crictl."""
    assert KindBackend.hang_pod is KubeBackend.hang_pod


PSA_REFUSAL = (
    'pods "{name}" is forbidden: violates PodSecurity "baseline:latest": host namespaces '
    '(hostPID=true), privileged (container "signal" must not set securityContext.privileged=true)'
)


def pod_security(server: MockServer, ns: str, labels: dict[str, str]) -> list[K8sObject]:
    """Pod Security admission at `baseline` unless the namespace is labelled privileged, and
    merge-patchable namespace labels (the mock's namespaces take no PATCH). Returns the
    namespace patches seen."""
    server.api.namespaces[ns] = {"metadata": {"name": ns, "labels": dict(labels)}}
    patches: list[K8sObject] = []
    emulator = kmock.KubernetesEmulator.__call__  # past the mock's routes (no recursion)

    async def pods(request: aiohttp.web.BaseRequest, m: Any) -> aiohttp.web.StreamResponse:
        level = server.api.namespaces[ns]["metadata"]["labels"].get(hang.PSA_ENFORCE)
        if request.method == "POST" and level != "privileged":
            body = await request.json()
            msg = PSA_REFUSAL.format(name=body["metadata"]["name"])
            return aiohttp.web.json_response(
                {
                    "kind": "Status",
                    "status": "Failure",
                    "code": 403,
                    "reason": "Forbidden",
                    "message": msg,
                },
                status=403,
            )
        return await emulator(server.api, request)

    async def namespace(request: aiohttp.web.BaseRequest, m: Any) -> aiohttp.web.StreamResponse:
        if request.method == "PATCH":
            patch = await request.json()
            patches.append(patch)
            server.api.namespaces[ns]["metadata"]["labels"].update(patch["metadata"]["labels"])
        return aiohttp.web.json_response(server.api.namespaces[ns])

    server.api.route(rf"^/api/v1/namespaces/{ns}/pods$", pods)
    server.api.route(rf"^/api/v1/namespaces/{ns}$", namespace)
    return patches


def test_hang_labels_the_runs_own_namespace_privileged_when_pod_security_refuses(
    setup: tuple[KubeBackend, FakeKubelet],
    container: Server,
    server: MockServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, kubelet = setup
    kubelet.containers = {CID: [container.pid]}
    point_at(monkeypatch, b, container.port)
    patches = pod_security(server, b.namespace, {hang.RUN_ID_LABEL: b.run_id})
    rec = b.hang_pod("gauntlet-inference-0")
    assert rec.landed, rec.detail
    assert patches == [{"metadata": {"labels": {hang.PSA_ENFORCE: "privileged"}}}]


def test_hang_leaves_a_namespace_it_did_not_create_alone(
    setup: tuple[KubeBackend, FakeKubelet],
    container: Server,
    server: MockServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, kubelet = setup
    kubelet.containers = {CID: [container.pid]}
    point_at(monkeypatch, b, container.port)
    patches = pod_security(server, b.namespace, {})  # no gauntlet.dev/run-id: not ours
    rec = b.hang_pod("gauntlet-inference-0")
    assert not rec.landed and patches == []
    assert "PodSecurity" in rec.detail and f"{hang.PSA_ENFORCE}=privileged" in rec.detail
    assert not proc_state(container.pid).startswith("T")


def test_probe_timing_calls_the_hang_inconclusive_when_it_did_not_land(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hang that never landed must not fail the service's probes (before: `hang_detected_s`
    failed with "never killed by its liveness probe")."""
    fault = FaultRecord(
        kind="hang", target="p-0", started_at=time.time(), landed=False, detail="did not land: x"
    )
    pod = SimpleNamespace(name="p-0", ready=True, deletionTimestamp=None, creationTimestamp=0.0)
    backend = SimpleNamespace(pods=lambda: [pod], hang_pod=lambda name: fault)
    result = SimpleNamespace(errors={})
    handle = SimpleNamespace(wait=lambda timeout: result)
    monkeypatch.setattr(
        probe_timing.common, "load_spec", lambda *a, **kw: SimpleNamespace(timeout_s=1)
    )
    monkeypatch.setattr(
        probe_timing.common, "background_load", lambda *a: contextlib.nullcontext(handle)
    )
    monkeypatch.setattr(probe_timing.time, "sleep", lambda s: None)
    ctx = SimpleNamespace(profile=load_profile("local"))
    faults: list[FaultRecord] = []
    checks = probe_timing.hang_phase(cast(Any, ctx), cast(Any, backend), faults, {})
    assert faults == [fault]
    assert [c.name for c in checks] == [
        "hang_fault_landed",
        "hang_detected_s",
        "hung_replica_unready_before_kill",
    ]
    assert all(c.inconclusive and not c.failed for c in checks)
    assert all("did not land: x" in c.note for c in checks)


def test_run_id_label_matches_the_backends() -> None:
    from harness.backends.kube import RUN_ID_LABEL

    assert hang.RUN_ID_LABEL == RUN_ID_LABEL


CGROUP_ROOT = Path("/sys/fs/cgroup/pids")


def _cgroup_writable() -> bool:
    probe = CGROUP_ROOT / f"gauntlet-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


@pytest.fixture()
def in_real_cgroup(container: Server) -> Iterator[str]:
    """Move the 'container' into a real cgroup (v1 pids, cgroupfs-driver layout) named by a
    container ID, as the runtime does; yields the ID."""
    if not _cgroup_writable():
        pytest.skip(f"{CGROUP_ROOT} is not writable here (needs root and cgroup v1 pids)")
    cid = f"{os.getpid():08x}" + "c" * 56
    group = CGROUP_ROOT / "kubepods" / "besteffort" / "pod-gauntlet-test" / cid
    group.mkdir(parents=True)
    (group / "cgroup.procs").write_text(str(container.pid))
    try:
        yield cid
    finally:
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / "cgroup.procs").write_text(str(container.pid))
        for d in (group, group.parent, group.parent.parent, group.parent.parent.parent):
            with contextlib.suppress(OSError):
                d.rmdir()


def test_hang_finds_the_container_by_its_real_cgroup(
    setup: tuple[KubeBackend, FakeKubelet],
    container: Server,
    in_real_cgroup: str,
    server: MockServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No mirror: the script scans this machine's /proc and finds the process whose cgroup names
    the container ID, as on a node (here: cgroup v1, cgroupfs layout)."""
    b, kubelet = setup
    kubelet.real_proc = True
    pod = target_pod(b.namespace)
    pod["status"]["containerStatuses"][0]["containerID"] = f"containerd://{in_real_cgroup}"
    server.api.put("Pod", pod)
    point_at(monkeypatch, b, container.port)
    assert in_real_cgroup in Path(f"/proc/{container.pid}/cgroup").read_text()
    rec = b.hang_pod("gauntlet-inference-0")
    assert rec.landed, rec.detail
    assert f"{container.pid}: T (stopped)" in rec.detail and rec.detail.count(": T (") == 1
    assert hang.resume_pod(b, "gauntlet-inference-0").landed
    assert answers(container.port, timeout_s=3.0)
