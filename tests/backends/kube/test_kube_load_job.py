"""The in-cluster load Job against the mock API server, with a fake Job controller that runs the
generator's entry point for real (a subprocess against a local HTTP server): the backend creates
the Job, follows the pod's log and brings back the result the generator measured."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest
from kube_mock import MockServer
from kube_objects import MakeBackend, bundle

from harness.backends.base import BackendError, ServiceLoadRunner
from harness.backends.kube import load_job
from harness.errors import InputError
from harness.load import LoadSpec, incluster
from harness.manifests.bundle import ManifestBundle
from harness.manifests.validate import validate_object
from harness.profile import load_profile
from harness.report.evidence_reader import read_evidence
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext

NODE = "node-zone-a-0"


class _Counter:
    """A loopback HTTP server counting the requests it answers (the Service's pods' view)."""

    def __init__(self) -> None:
        counter = self
        self.count = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                with counter.lock:
                    counter.count += 1
                body = b'{"choices": [{"text": "x"}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@dataclass
class _Forward:
    """What the backend keeps of a `kubectl port-forward` (its loopback URL)."""

    url: str

    def stop(self) -> None:
        pass


@dataclass
class _Run:
    proc: subprocess.Popen[bytes] | None
    log: Path


@dataclass
class FakeJobController:
    """Plays the Job controller, the kubelet, cluster DNS and kube-proxy for load Jobs: a Job
    gets a pod that runs the Job's container command (the real entry point) as a subprocess
    with the Job's env; the Service's DNS name resolves to `upstream` (the subprocess is given
    that address, as DNS + kube-proxy would route it). The pod's log is the subprocess's
    stdout, served (also with follow=true) at pods/{name}/log. A deleted pod gets SIGTERM, a
    deleted Job's process is killed; an exit marks the pod and the Job as the controllers do."""

    server: MockServer
    upstream: str
    tmp: Path
    evict: bool = False  # the next pod is evicted before its container starts
    crash: str | None = None  # the next pod's container prints this on stderr and exits 1
    runs: dict[tuple[str, str], _Run] = field(default_factory=dict)
    jobs: dict[tuple[str, str], str] = field(default_factory=dict)  # job -> its pod
    created: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.server.api.route(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$", self._log)
        threading.Thread(target=self._loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for run in self.runs.values():
            if run.proc is not None and run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait(10)

    async def _log(self, request: aiohttp.web.BaseRequest, m: Any) -> aiohttp.web.StreamResponse:
        run = self.runs.get((m.group(1), m.group(2)))
        if run is None:
            return aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404)
        if request.query.get("follow") != "true":
            return aiohttp.web.Response(text=run.log.read_text(), content_type="text/plain")
        resp = aiohttp.web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        pos = 0
        while True:
            ended = run.proc is None or run.proc.poll() is not None
            data = run.log.read_bytes()[pos:]
            if data:
                await resp.write(data)
                pos += len(data)
            elif ended:
                break
            else:
                await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # surfaced by the test
                self.errors.append(repr(exc))
            time.sleep(0.05)

    def _get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        obj: dict[str, Any] | None = self.server.call(self.server.api.get, kind, ns, name)
        return obj

    def _tick(self) -> None:
        for job in self.server.call(self.server.api.items, "Job"):
            key = (job["metadata"]["namespace"], job["metadata"]["name"])
            if key not in self.jobs:
                self._start_pod(job)
        for (ns, job_name), pod in list(self.jobs.items()):
            run = self.runs[(ns, pod)]
            alive = run.proc is not None and run.proc.poll() is None
            if not alive:
                continue
            if self._get("Job", ns, job_name) is None:
                run.proc.kill()  # type: ignore[union-attr]
            elif self._get("Pod", ns, pod) is None and run.proc is not None:
                run.proc.send_signal(signal.SIGTERM)  # the kubelet stopping a deleted pod
        for (ns, job_name), pod in list(self.jobs.items()):
            run = self.runs[(ns, pod)]
            if run.proc is None or run.proc.poll() is None or getattr(run, "reported", False):
                continue
            run.reported = True  # type: ignore[attr-defined]
            self._finish(ns, job_name, pod, run.proc.returncode)

    def _start_pod(self, job: dict[str, Any]) -> None:
        self.created.append(job)
        ns, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = job["spec"]["template"]
        pod = f"{job_name}-abcde"
        self.jobs[(ns, job_name)] = pod
        log = self.tmp / f"{pod}.log"
        log.write_text("")
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": ns,
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": {**template["spec"], "nodeName": NODE},
        }
        if self.evict:
            self.evict = False
            obj["status"] = {
                "phase": "Failed",
                "reason": "Evicted",
                "message": "The node was low on resource: memory.",
            }
            self.runs[(ns, pod)] = _Run(None, log)
            self.server.call(self.server.api.put, "Pod", obj)
            self._job_status(ns, job_name, failed=True, reason="BackoffLimitExceeded")
            return
        container = template["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        spec = json.loads(env[incluster.SPEC_ENV])
        spec["target"], spec["allow_targets"] = self.upstream, [self.upstream]  # DNS + kube-proxy
        env[incluster.SPEC_ENV] = json.dumps(spec)
        env[incluster.OUT_ENV] = str(self.tmp / pod)
        env.pop("HOME", None)
        assert container["command"][:3] == ["python", "-m", "harness.load.incluster"]
        cmd = [sys.executable, *container["command"][1:]]
        if self.crash is not None:  # e.g. an image without locust
            cmd = [sys.executable, "-c", f"import sys; sys.exit({self.crash!r})"]
            self.crash = None
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        self.runs[(ns, pod)] = _Run(proc, log)
        obj["status"] = {
            "phase": "Running",
            "containerStatuses": [{"name": container["name"], "state": {"running": {}}}],
        }
        self.server.call(self.server.api.put, "Pod", obj)

    def _finish(self, ns: str, job_name: str, pod: str, code: int) -> None:
        if self._get("Pod", ns, pod) is not None:
            self.server.call(
                self.server.api.put,
                "Pod",
                {
                    "metadata": {"name": pod, "namespace": ns},
                    "status": {
                        "phase": "Succeeded" if code == 0 else "Failed",
                        "containerStatuses": [
                            {
                                "name": load_job.CONTAINER,
                                "state": {
                                    "terminated": {
                                        "exitCode": code,
                                        "reason": "Completed" if code == 0 else "Error",
                                    }
                                },
                            }
                        ],
                    },
                },
            )
        self._job_status(ns, job_name, failed=code != 0, reason="BackoffLimitExceeded")

    def _job_status(self, ns: str, job_name: str, *, failed: bool, reason: str) -> None:
        if self._get("Job", ns, job_name) is None:
            return
        cond = {"type": "Failed" if failed else "Complete", "status": "True"}
        if failed:
            cond.update(reason=reason, message="Job has reached the specified backoff limit")
        status = {"failed": 1} if failed else {"succeeded": 1}
        self.server.call(
            self.server.api.put,
            "Job",
            {
                "metadata": {"name": job_name, "namespace": ns},
                "status": {**status, "conditions": [cond]},
            },
        )


@pytest.fixture()
def upstream() -> Iterator[_Counter]:
    srv = _Counter()
    yield srv
    srv.close()


@pytest.fixture()
def jobs(server: MockServer, upstream: _Counter, tmp_path: Path) -> Iterator[FakeJobController]:
    (tmp_path / "jobs").mkdir()
    ctl = FakeJobController(server, upstream.url, tmp_path / "jobs")
    ctl.start()
    yield ctl
    ctl.stop()
    assert not ctl.errors, ctl.errors


def _ctx(tmp_path: Path, bundle_: ManifestBundle) -> ScenarioContext:
    def no_backend(_: Path) -> Any:
        raise AssertionError("the test deploys its own backend")

    return ScenarioContext(
        profile=load_profile("local"),
        bundle=bundle_,
        backend_factory=no_backend,
        backend_name="kube",
        out_dir=tmp_path / "scenario",
    )


SMALL = {
    "duration_s": 2.0,
    "rate_rps": 10.0,
    "arrival": "constant",
    "stream": False,
    "goodput": {},
    "shape": None,
}


def test_load_runs_in_a_job_through_the_service_and_comes_back(
    make_backend: MakeBackend,
    server: MockServer,
    jobs: FakeJobController,
    upstream: _Counter,
    tmp_path: Path,
) -> None:
    b = make_backend(run_id="lj1")
    assert issubclass(type(b), ServiceLoadRunner)
    b.deploy(bundle(replicas=2))
    ctx = _ctx(tmp_path, b.bundle)
    spec = common.load_spec(ctx, b, **SMALL)
    dns = "http://gauntlet-inference.gauntlet-lj1.svc.cluster.local:80"
    assert spec.target == dns and spec.load_path == "service"

    result = common.run_load(ctx, spec, "load")

    # the Job as the backend created it: valid batch/v1, bounded, aimed at the Service's name
    (job,) = jobs.created
    validate_object(job, "load-job")
    assert job["metadata"]["namespace"] == "gauntlet-lj1-load"
    assert job["metadata"]["labels"][load_job.RUN_ID_LABEL] == "lj1"
    js = job["spec"]
    assert js["backoffLimit"] == 0 and js["ttlSecondsAfterFinished"] > 0
    assert js["activeDeadlineSeconds"] >= spec.duration_s + spec.timeout_s
    pod_spec = js["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    (container,) = pod_spec["containers"]
    assert container["image"] == "gauntlet-inference:dev"
    assert container["resources"]["requests"] == container["resources"]["limits"]
    sent = json.loads(next(e["value"] for e in container["env"] if e["name"] == incluster.SPEC_ENV))
    assert sent["target"] == dns and sent["load_path"] == "service"

    # the result is what the generator measured, labelled as through the Service
    assert result.load_path == "service"
    assert result.requests == result.ok == 20 == upstream.count
    out = ctx.out_dir / "load"
    assert (out / "load.json").exists() and (out / "records.npy").exists()
    assert len(result.records()) == 20
    w = result.window(result.started_at, result.started_at + 1)
    assert w.requests == 10
    assert any(NODE in c for c in result.caveats)  # whose clock the times are
    assert (ctx.out_dir / "load.json").exists()  # copied up for the report
    # the Job is gone once its result is in; the generator's pod never counts as a replica
    assert server.call(server.api.get, "Job", "gauntlet-lj1-load", job["metadata"]["name"]) is None
    assert all(not p.name.startswith("gauntlet-load") for p in b.pods())

    # a targeted probe (one pod's port-forward URL, as pod_url() returns it) runs here and
    # says so; kubectl is not here, so the forward is registered as pod_url() would have it
    b._forwards["pod/gauntlet-inference-0"] = _Forward(upstream.url)
    b._forwards["svc/gauntlet-inference"] = _Forward("http://127.0.0.1:9")
    assert common.load_path_of(b, "http://127.0.0.1:9/") == "service-port-forward"
    assert common.load_path_of(b, "http://127.0.0.1:7") == "direct"
    probe = common.load_spec(ctx, b, target=upstream.url, **SMALL)
    assert probe.load_path == "pod"
    pod_result = common.run_load(ctx, probe, "load-probe")
    assert pod_result.load_path == "pod" and pod_result.ok == 20
    assert len(jobs.created) == 1  # no Job for it
    # the report says which load did not go through the Service
    notes = read_evidence(ctx.out_dir).problems
    assert [n for n in notes if "not through the Service" in n] == [
        "load-probe.json: load went to one pod directly (a targeted probe), not through the Service"
    ]

    b.teardown()
    assert "gauntlet-lj1-load" in server.api.deleted_namespaces


def test_background_load_starts_stops_gracefully_and_brings_the_result(
    make_backend: MakeBackend, jobs: FakeJobController, upstream: _Counter, tmp_path: Path
) -> None:
    b = make_backend(run_id="lj2")
    b.deploy(bundle(replicas=2))
    ctx = _ctx(tmp_path, b.bundle)
    spec = common.load_spec(ctx, b, **{**SMALL, "duration_s": 60.0, "timeout_s": 2.0})
    with common.background_load(ctx, spec) as handle:
        assert handle.started_at is not None  # the pod's schedule clock, read from its log
        deadline = time.monotonic() + 15
        while handle.progress().get("sent", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # the generator's progress lines, every 2 s
        assert handle.running and handle.progress()["sent"] > 0
        result = handle.stop(timeout=60)  # deletes the pod: SIGTERM, graceful stop
    assert result.stopped_early and result.load_path == "service"
    assert 5 <= result.requests < 100 and result.requests == upstream.count
    assert (ctx.out_dir / "load.json").exists()


def test_evicted_generator_is_a_clear_error_never_a_result(
    make_backend: MakeBackend, jobs: FakeJobController, tmp_path: Path
) -> None:
    b = make_backend(run_id="lj3")
    b.deploy(bundle(replicas=2))
    ctx = _ctx(tmp_path, b.bundle)
    jobs.evict = True
    with pytest.raises(BackendError) as err:
        common.run_load(ctx, common.load_spec(ctx, b, **SMALL), "load")
    text = str(err.value)
    assert "gave no result" in text and "Evicted" in text and "BackoffLimitExceeded" in text
    assert not (ctx.out_dir / "load" / "load.json").exists()


def test_a_job_only_targets_this_runs_service(make_backend: MakeBackend, tmp_path: Path) -> None:
    b = make_backend(run_id="lj4")
    b.deploy(bundle(replicas=1))
    other = "http://gauntlet-inference.someone-else.svc.cluster.local:80"
    spec = LoadSpec(target=other, allow_targets=[other], duration_s=1)
    with pytest.raises(InputError, match="only targets this run's Service"):
        b.start_service_load(spec, tmp_path / "x")


def test_job_manifest_validates_and_is_bounded() -> None:
    url = "http://svc.ns.svc.cluster.local:80"
    spec = LoadSpec(target=url, allow_targets=[url], duration_s=30, workers=2, load_path="service")
    job = load_job.job_manifest(
        spec,
        name="gauntlet-load-1-abc",
        namespace="ns-load",
        run_id="r",
        image="img:1",
        image_pull_policy="IfNotPresent",
    )
    validate_object(job, "job")
    assert job["spec"]["activeDeadlineSeconds"] == load_job.active_deadline_s(spec)
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2500m"
    assert load_job.load_namespace("x" * 63) == "x" * 58 + "-load"


def test_teardown_mid_run_stops_the_generator_and_deletes_the_job(
    make_backend: MakeBackend, server: MockServer, jobs: FakeJobController, tmp_path: Path
) -> None:
    b = make_backend(run_id="lj5")
    b.deploy(bundle(replicas=1))
    url = b.service_load_url()
    spec = LoadSpec(target=url, allow_targets=[url], duration_s=60, rate_rps=5, timeout_s=2,
                    load_path="service")  # fmt: skip
    handle = b.start_service_load(spec, tmp_path / "bg")
    assert handle.wait_started(60)
    (job,) = jobs.created
    b.teardown()  # as on Ctrl-C: the scenario's deploy() context tears down
    assert not handle.running
    assert server.call(server.api.get, "Job", "gauntlet-lj5-load", job["metadata"]["name"]) is None
    assert "gauntlet-lj5-load" in server.api.deleted_namespaces
    assert handle.wait(1).stopped_early  # what ran is kept, stopped gracefully


def test_a_generator_that_crashes_names_its_last_words(
    make_backend: MakeBackend, jobs: FakeJobController, tmp_path: Path
) -> None:
    b = make_backend(run_id="lj6")
    b.deploy(bundle(replicas=1))
    ctx = _ctx(tmp_path, b.bundle)
    jobs.crash = "ModuleNotFoundError: No module named 'locust'"
    with pytest.raises(BackendError) as err:
        common.run_load(ctx, common.load_spec(ctx, b, **SMALL), "load")
    text = str(err.value)
    assert "No module named 'locust'" in text and "exit code 1" in text
    assert "generator.log" in text


def test_labels_on_a_backend_without_in_cluster_load() -> None:
    """The local backend: its service_url() is its Service proxy, a pod_url() one pod."""
    from types import SimpleNamespace

    local: Any = SimpleNamespace(
        service_url=lambda: "http://127.0.0.1:8000",
        pods=lambda: [SimpleNamespace(name="p-0"), SimpleNamespace(name="p-1")],
        pod_url=lambda pod: {"p-0": "http://127.0.0.1:8001", "p-1": "http://127.0.0.1:8002"}[pod],
    )
    assert common.load_path_of(local, "http://127.0.0.1:8000/") == "service"
    assert common.load_path_of(local, "http://127.0.0.1:8002") == "pod"
    assert common.load_path_of(local, "http://127.0.0.1:9") == "direct"


def test_a_busy_api_server_while_the_pod_starts_is_waited_out(
    make_backend: MakeBackend,
    server: MockServer,
    jobs: FakeJobController,
    upstream: _Counter,
    tmp_path: Path,
) -> None:
    import kmock

    answered: list[int] = []

    async def busy(request: aiohttp.web.BaseRequest, m: Any) -> aiohttp.web.StreamResponse:
        if request.method == "GET" and len(answered) < 2:
            answered.append(503)
            return aiohttp.web.json_response(
                {"kind": "Status", "code": 503, "reason": "ServiceUnavailable"}, status=503
            )
        answered.append(200)
        return await kmock.KubernetesEmulator.__call__(server.api, request)

    server.api.route(r"^/apis/batch/v1/namespaces/[^/]+/jobs/[^/]+$", busy)
    b = make_backend(run_id="lj7")
    b.deploy(bundle(replicas=1))
    ctx = _ctx(tmp_path, b.bundle)
    result = common.run_load(ctx, common.load_spec(ctx, b, **SMALL), "load")
    assert answered[:2] == [503, 503] and result.ok == 20 == upstream.count
