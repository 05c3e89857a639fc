"""Load from inside the cluster: a batch/v1 Job runs the generator against the Service's DNS name.

`kubectl port-forward svc/x` forwards to one pod (kubectl picks it), so load sent through it
measures one replica, not the Service. Here the generator (`python -m harness.load.incluster`,
the same engine as a local run) runs in a Job's pod and sends to
`http://<service>.<namespace>.svc.cluster.local:<port>`: cluster DNS gives the Service's
ClusterIP and kube-proxy balances the connections over its Ready endpoints, as for any client
in the cluster (kubernetes-sigs/inference-perf runs its generator the same way). The pod prints
its result (load.json and the records) on stdout; the handle follows the pod's log
(`pods/{name}/log?follow=true`) and writes them into the scenario's evidence folder.

The Job lives in its own namespace, `<run namespace>-load` (same run-id label), so the
generator's pod never shows among the Deployment's pods, their metrics or their events.

Safety: a Job is only ever aimed at the Service of the namespace this backend created, in the
kube context the user allowed (`LoadJobs.start` refuses any other target). Stopping (Ctrl-C,
`LoadHandle.stop`) deletes the pod gracefully: the generator stops on SIGTERM and still prints
what it measured. The Job is deleted when the run ends and at teardown; backoffLimit 0,
activeDeadlineSeconds and ttlSecondsAfterFinished bound it if the harness dies.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from harness.backends.base import BackendError
from harness.backends.kube.api import (
    RUN_ID_LABEL,
    KubeApi,
    KubeApiError,
    resource_path,
    run_namespace,
)
from harness.errors import InputError, SetupError
from harness.load import incluster
from harness.load.result import LoadResult
from harness.load.runner import READY_TIMEOUT_S, START_MARGIN_S, LoadHandle, write_result
from harness.load.spec import LoadSpec

log = logging.getLogger("harness.backends.kube")

ROLE_LABEL = "gauntlet.dev/role"
ROLE = "load-generator"
JOB_LABEL = "gauntlet.dev/load-job"
CONTAINER = "generator"
POD_START_TIMEOUT_S = 300.0  # scheduling + image pull
TTL_AFTER_FINISHED_S = 600
FINAL_STATE_WAIT_S = 30.0
FOLLOW_READ_TIMEOUT_S = 120.0  # the generator prints progress every 2 s
FOLLOW_RETRIES = 3
#: container waiting reasons that never resolve by themselves
STUCK_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
)
_serial = itertools.count(1)


def load_namespace(run_namespace: str) -> str:
    """`<run namespace>-load`, within the 63 characters of a DNS label."""
    return f"{run_namespace[:58].rstrip('-')}-load"


def service_dns_url(service: dict[str, Any], namespace: str) -> str:
    """The Service's address from any pod of the cluster: its DNS name and first port."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        raise BackendError(f"Service {service['metadata']['name']} has no ports")
    return f"http://{service['metadata']['name']}.{namespace}.svc.cluster.local:{ports[0]['port']}"


def active_deadline_s(spec: LoadSpec) -> int:
    """The Job's activeDeadlineSeconds: the run, its last timeouts, worker start and margin."""
    return math.ceil(
        POD_START_TIMEOUT_S + READY_TIMEOUT_S + spec.duration_s + spec.timeout_s + 120.0
    )


def grace_period_s(spec: LoadSpec) -> int:
    """Time a stopped generator gets to finish its in-flight requests and print its result."""
    return math.ceil(spec.timeout_s + 30.0)


def generator_resources(spec: LoadSpec) -> dict[str, dict[str, str]]:
    """requests = limits (Guaranteed QoS: evicted last): a core per locust worker plus the
    parent's half, 256 MiB each plus 512 MiB. A throttled generator would delay its own sends;
    load.json's generator_cpu shows how busy the workers were."""
    cpu = f"{spec.workers * 1000 + 500}m"
    memory = f"{512 + 256 * spec.workers}Mi"
    both = {"cpu": cpu, "memory": memory}
    return {"requests": dict(both), "limits": dict(both)}


def job_manifest(
    spec: LoadSpec,
    *,
    name: str,
    namespace: str,
    run_id: str,
    image: str,
    image_pull_policy: str | None = None,
    image_pull_secrets: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job that runs `spec` once from inside the cluster."""
    labels = {
        RUN_ID_LABEL: run_id,
        ROLE_LABEL: ROLE,
        JOB_LABEL: name,
        "app.kubernetes.io/managed-by": "gauntlet",
    }
    sent = spec.model_copy(update={"worker_cpus": None})  # the node's CPUs are not ours to pin
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": ["python", "-m", "harness.load.incluster"],
        "env": [
            {"name": incluster.SPEC_ENV, "value": sent.model_dump_json()},
            {"name": incluster.OUT_ENV, "value": incluster.DEFAULT_OUT},
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": generator_resources(spec),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": grace_period_s(spec),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if image_pull_secrets:
        pod_spec["imagePullSecrets"] = image_pull_secrets
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"gauntlet.dev/target": spec.target},
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": active_deadline_s(spec),
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return dict(c)
    return None


def job_outcome(job: dict[str, Any]) -> tuple[str, str] | None:
    """('Complete' | 'Failed', 'reason: message') once the Job has finished, else None."""
    for kind in ("Complete", "Failed"):
        c = _condition(job, kind)
        if c is not None:
            return kind, f"{c.get('reason') or kind}: {c.get('message') or ''}".rstrip(": ")
    return None


def transient(exc: KubeApiError) -> bool:
    """An answer worth polling again: no answer at all, 429, or a 5xx."""
    return exc.status in (0, 429) or exc.status >= 500


def pod_state(pod: dict[str, Any] | None) -> str:
    """What a user needs of a generator pod that gave no result (phase, eviction, OOM...)."""
    if pod is None:
        return "pod gone"
    status = pod.get("status") or {}
    parts = [f"phase {status.get('phase', '?')}"]
    if status.get("reason"):
        parts.append(f"{status['reason']}: {status.get('message', '')}".rstrip(": "))
    for cs in status.get("containerStatuses") or []:
        for key, st in (cs.get("state") or {}).items():
            if key == "running":
                continue
            desc = st.get("reason") or key
            if "exitCode" in st:
                desc += f" (exit code {st['exitCode']})"
            if st.get("message"):
                desc += f": {st['message']}"
            parts.append(f"container {cs.get('name')} {desc}")
    return "; ".join(parts)


class _LogFollower(threading.Thread):
    """Follows a pod's log (`follow=true`) line by line until the container's stream ends."""

    def __init__(self, api: KubeApi, path: str, on_line: Any) -> None:
        super().__init__(name="gauntlet-load-log", daemon=True)
        self.api, self.path, self.on_line = api, path, on_line
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self._resp: Any = None

    def run(self) -> None:
        try:
            ac = self.api.api_client
            call = ac.param_serialize(
                "GET",
                self.path,
                query_params=[("container", CONTAINER), ("follow", "true")],
                header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
            )
            resp = ac.call_api(*call, _request_timeout=(10.0, FOLLOW_READ_TIMEOUT_S))
            self._resp = resp.response
            if resp.status >= 400:
                raise KubeApiError(resp.status, resp.reason or "", resp.read()[:300].decode())
            pending = b""
            for chunk in resp.response.stream(65536, decode_content=True):
                pending += chunk
                *done, pending = pending.split(b"\n")
                for raw in done:
                    self._line(raw)
            if pending:
                self._line(pending)
        except BaseException as err:
            self.error = err
        finally:
            with contextlib.suppress(Exception):
                if self._resp is not None:
                    self._resp.release_conn()

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace")
        self.lines.append(line)
        self.on_line(line)

    def text(self) -> str:
        return "\n".join(self.lines)


class JobLoadHandle(LoadHandle):
    """A LoadHandle whose generator runs in a Job's pod. `wait`, `stop`, `request_stop`,
    `running`, `started_at` and `progress` behave as a local run's; `runner.stop_all` and
    `request_stop_all` reach it too."""

    def __init__(
        self,
        spec: LoadSpec,
        out_dir: Path,
        *,
        api: KubeApi,
        manifest: dict[str, Any],
        poll_s: float = 1.0,
        pod_start_timeout_s: float = POD_START_TIMEOUT_S,
    ) -> None:
        super().__init__(spec, out_dir)
        self.api = api
        self.manifest = manifest
        self.name = str(manifest["metadata"]["name"])
        self.namespace = str(manifest["metadata"]["namespace"])
        self.poll_s = poll_s
        self.pod_start_timeout_s = pod_start_timeout_s
        self.pod: str | None = None
        self.node: str | None = None
        self._progress: dict[str, float] = {}
        self._job_deleted = False
        self._pod_stopped = False

    # what the caller sees ------------------------------------------------------------------
    def progress(self) -> dict[str, float]:
        return dict(self._progress)

    def wait_started(self, timeout_s: float = POD_START_TIMEOUT_S + READY_TIMEOUT_S + 30.0) -> bool:
        """Block until the generator's schedule has started (its pod scheduled, image pulled,
        workers ready), so a scenario's fault timing counts from the load's real start. False
        when the run ended first or the time ran out (`wait()` then says why)."""
        deadline = time.monotonic() + timeout_s
        while self.started_at is None and not self._done.is_set():
            if time.monotonic() > deadline:
                return False
            self._done.wait(0.05)
        return self.started_at is not None

    def _touch_stop(self) -> None:
        """A stop is carried out by the load thread (it deletes the pod gracefully): never
        block a signal handler on the API server."""

    # the load thread -------------------------------------------------------------------------
    def _launch(self) -> None:
        path = resource_path("batch/v1", "Job", self.namespace)
        log.info(
            "load Job %s/%s: %s from inside the cluster",
            self.namespace,
            self.name,
            self.spec.target,
        )
        try:
            self.api.create(path, self.manifest)
        except KubeApiError as exc:
            raise BackendError(
                f"creating the load Job {self.namespace}/{self.name} failed: "
                f"{exc.status} {exc.reason}: {exc.message}"
            ) from None

    def _job_path(self) -> str:
        return resource_path("batch/v1", "Job", self.namespace, self.name)

    def _pod_path(self, pod: str) -> str:
        return resource_path("v1", "Pod", self.namespace, pod)

    def _get_pod(self, pod: str) -> dict[str, Any] | None:
        try:
            return self.api.get(self._pod_path(pod))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _wait_for_pod(self) -> str:
        """The generator pod's name once its container has started (or ended)."""
        deadline = time.monotonic() + self.pod_start_timeout_s
        last = "no pod yet"
        while True:
            if self._stop_requested.is_set():
                raise SetupError("load stopped before its generator pod started (nothing was sent)")
            try:
                outcome = job_outcome(self.api.get(self._job_path()))
                pods = self.api.list(
                    resource_path("v1", "Pod", self.namespace),
                    label_selector=f"{JOB_LABEL}={self.name}",
                )
            except KubeApiError as exc:
                if not transient(exc) or time.monotonic() > deadline:
                    raise
                last = f"API server answered {exc.status} {exc.reason}"
                time.sleep(self.poll_s)
                continue
            for p in pods:
                name = p["metadata"]["name"]
                last = f"pod {name}: {pod_state(p)}"
                for cs in (p.get("status") or {}).get("containerStatuses") or []:
                    waiting = (cs.get("state") or {}).get("waiting") or {}
                    if waiting.get("reason") in STUCK_REASONS:
                        image = self.manifest["spec"]["template"]["spec"]["containers"][0]["image"]
                        raise BackendError(
                            f"the load generator pod {self.namespace}/{name} cannot start: "
                            f"{waiting['reason']}: {waiting.get('message', '')} (image {image}; "
                            "the generator runs from the service's image, which must hold the "
                            "harness and locust: see docs/kubernetes.md)"
                        )
                if (p.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed"):
                    self.node = (p.get("spec") or {}).get("nodeName")
                    return str(name)
            if outcome is not None:
                raise BackendError(
                    f"load Job {self.namespace}/{self.name} ended before its pod ran: "
                    f"{outcome[0]} {outcome[1]} ({last})"
                )
            if time.monotonic() > deadline:
                raise BackendError(
                    f"the load generator pod did not start within {self.pod_start_timeout_s:.0f}s "
                    f"({last})"
                )
            time.sleep(self.poll_s)

    def _on_line(self, line: str) -> None:
        if not line.startswith(incluster.EVENT):
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ev = json.loads(line[len(incluster.EVENT) :])
            if ev.get("event") == "started" and self.started_at is None:
                self.started_at = float(ev["started_at"])
            elif ev.get("event") == "progress":
                self._progress = {k: float(v) for k, v in ev.items() if k != "event"}

    def _stop_pod(self, pod: str) -> None:
        """SIGTERM to the generator (it stops and prints its result) by deleting its pod."""
        if self._pod_stopped:
            return
        self._pod_stopped = True
        log.info("stopping the load generator pod %s/%s", self.namespace, pod)
        with contextlib.suppress(KubeApiError):
            self.api.delete(self._pod_path(pod), gracePeriodSeconds=grace_period_s(self.spec))

    def _follow(self, pod: str) -> str:
        """The generator's whole stdout: followed live, re-read if the stream broke."""
        spec = self.spec
        hard = (
            time.monotonic()
            + READY_TIMEOUT_S
            + START_MARGIN_S
            + spec.duration_s
            + spec.timeout_s
            + 60.0
        )
        path = self._pod_path(pod) + "/log"
        text = ""
        for _attempt in range(FOLLOW_RETRIES + 1):
            follower = _LogFollower(self.api, path, self._on_line)
            follower.start()
            while follower.is_alive():
                if self._stop_requested.is_set() or time.monotonic() > hard:
                    self._stop_pod(pod)
                follower.join(self.poll_s)
            text = follower.text()
            if incluster.END in follower.lines or follower.error is None:
                return text
            obj = self._get_pod(pod)
            log.warning("following the load generator's log broke: %s", follower.error)
            if obj is None or (obj.get("status") or {}).get("phase") not in ("Running", "Pending"):
                break
        with contextlib.suppress(KubeApiError):  # a last full read, if the pod is still there
            full = self.api.get_text(path, container=CONTAINER)
            if len(full) > len(text):
                text = full
        return text

    def _final_outcome(self) -> tuple[str, str] | None:
        deadline = time.monotonic() + FINAL_STATE_WAIT_S
        while True:
            try:
                outcome = job_outcome(self.api.get(self._job_path()))
            except KubeApiError:
                return None
            if outcome is not None or time.monotonic() > deadline:
                return outcome
            time.sleep(self.poll_s)

    def _run(self) -> LoadResult:
        pod = self._wait_for_pod()
        self.pod = pod
        text = self._follow(pod)
        out = incluster.parse_output(text)
        (self.out_dir / "generator.log").write_text("\n".join(out.log) + "\n")
        outcome = self._final_outcome()
        where = f"load Job {self.namespace}/{self.name} (pod {pod})"
        if out.payload is None:
            state = pod_state(self._get_pod(pod))
            why = out.error or out.payload_problem or "its log holds no result"
            tail = " | ".join(line for line in out.log[-5:] if line.strip())
            raise BackendError(
                f"{where} gave no result: {why}; job: "
                f"{' '.join(outcome) if outcome else 'not finished'}; {state}"
                + (f"; its log ends: {tail[-600:]}" if tail else "")
                + f" (all of it: {self.out_dir / 'generator.log'})"
            )
        result: LoadResult = incluster.unpack_result(out.payload, self.out_dir)
        result.caveats.append(
            f"measured in the cluster by {where} on node {self.node or '?'}: its times are "
            "that node's clock"
        )
        if outcome is not None and outcome[0] == "Failed" and not self._pod_stopped:
            result.caveats.append(f"the load Job failed after printing its result: {outcome[1]}")
        write_result(result, self.out_dir)
        return result

    def _terminate(self) -> None:
        """Delete the Job and its pod (idempotent; the load thread's last step)."""
        if self._job_deleted:
            return
        self._job_deleted = True
        try:
            self.api.delete(self._job_path(), propagationPolicy="Background")
        except KubeApiError as exc:
            if exc.status != 404:
                log.warning("deleting load Job %s/%s: %s", self.namespace, self.name, exc)


class LoadJobs:
    """A backend's in-cluster load runs: their namespace, their Jobs, their clean-up."""

    def __init__(self, api: KubeApi, run_namespace: str, run_id: str, poll_s: float) -> None:
        self.api = api
        self.run_namespace = run_namespace
        self.namespace = load_namespace(run_namespace)
        self.run_id = run_id
        self.poll_s = poll_s
        self.handles: list[JobLoadHandle] = []
        self._namespace_created = False
        self._lock = threading.Lock()

    def _ensure_namespace(self) -> None:
        with self._lock:
            if self._namespace_created:
                return
            body = run_namespace(self.namespace, self.run_id)
            log.info("creating namespace %s for the in-cluster load generator", self.namespace)
            try:
                self.api.create(resource_path("v1", "Namespace"), body)
            except KubeApiError as exc:
                if exc.status != 409:
                    raise BackendError(
                        f"creating namespace {self.namespace} for the load generator failed: "
                        f"{exc.status} {exc.reason}: {exc.message}"
                    ) from None
            self._namespace_created = True

    def start(
        self,
        spec: LoadSpec,
        out_dir: Path,
        *,
        service_url: str,
        image: str,
        image_pull_policy: str | None = None,
        image_pull_secrets: list[dict[str, str]] | None = None,
    ) -> JobLoadHandle:
        if spec.target.rstrip("/") != service_url.rstrip("/"):
            raise InputError(
                f"an in-cluster load Job only targets this run's Service ({service_url}), "
                f"not {spec.target!r}",
                field="target",
                fix="aim the spec at backend.service_load_url(), or run it locally",
            )
        if spec.trace is not None:
            raise InputError(
                "a trace file is on this machine, not in the generator's pod",
                field="trace",
                fix="replay traces with a local run (`gauntlet load`)",
            )
        self._ensure_namespace()
        name = f"gauntlet-load-{next(_serial)}-{secrets.token_hex(3)}"
        manifest = job_manifest(
            spec,
            name=name,
            namespace=self.namespace,
            run_id=self.run_id,
            image=image,
            image_pull_policy=image_pull_policy,
            image_pull_secrets=image_pull_secrets,
        )
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        handle = JobLoadHandle(
            spec, Path(out_dir), api=self.api, manifest=manifest, poll_s=self.poll_s
        )
        self.handles.append(handle)
        handle.start()
        return handle

    def teardown(self, keep_namespace: bool) -> list[str]:
        """Stop every Job still running (bounded), delete it, then the namespace."""
        errors: list[str] = []
        for h in self.handles:
            if h.running:
                h.request_stop()
                with contextlib.suppress(Exception):
                    h.wait(grace_period_s(h.spec) + FINAL_STATE_WAIT_S + 10.0)
            h._terminate()
        if self._namespace_created and not keep_namespace:
            try:
                self.api.delete(
                    resource_path("v1", "Namespace", name=self.namespace),
                    propagationPolicy="Background",
                )
            except KubeApiError as exc:
                if exc.status != 404:
                    errors.append(f"deleting namespace {self.namespace}: {exc}")
        return errors
