"""LocalBackend with real processes (the stand-in server) under real cgroups where available."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from standin_specs import bundle, deployment

from harness.backends.local import LocalBackend, cleanup
from harness.backends.local.kubelet import cgroups
from harness.backends.local.paths import STATE_DIR

pytestmark = pytest.mark.timeout(240)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("x-gauntlet-pod", "")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-gauntlet-proxy", "")


def test_oom_killed_by_kernel_reported_137(tmp_path: Path, need_cgroups: None) -> None:
    dep = deployment(alloc_mb=200, memory_limit="64Mi", probes={})
    with LocalBackend(tmp_path, probe_jitter=False, backoff_scale=0.1) as b:
        assert b.limits_enforced
        b.deploy(bundle(dep))
        b.wait_until(lambda: any(p.restarts >= 1 for p in b.pods()), 90, what="an OOM restart")
        pod = b.pods()[0]
        term = pod.containerStatuses[0].lastState.terminated
        assert term is not None and term.reason == "OOMKilled" and term.exitCode == 137
        assert any(
            e.reason == "OOMKilling" and e.involvedObject.name == pod.name for e in b.events()
        )
        b.wait_until(
            lambda: any((s.oom_kills or 0) >= 1 for s in b.resource_samples()),
            30,
            what="oom_kill sample",
        )


def test_cpu_limit_is_a_cfs_quota_and_throttling_is_sampled(
    tmp_path: Path, need_cgroups: None
) -> None:
    dep = deployment(work_ms=300)
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "100m"
    with LocalBackend(tmp_path, probe_jitter=False, sample_period_s=0.5) as b:
        b.deploy(bundle(dep))
        b.wait_ready(timeout_s=60)
        for _ in range(6):  # the stand-in spins for 300 ms of wall time per request
            assert _get(b.service_url() + "/work")[0] == 200
        b.wait_until(
            lambda: any((s.cpu_throttled_periods or 0) > 0 for s in b.resource_samples()),
            10,
            what="a throttling sample",
        )
        last = b.resource_samples()[-1]
        assert last.cpu_periods and last.cpu_throttled_periods and last.cpu_throttled_s
        assert last.cpu_throttled_periods <= last.cpu_periods and last.cpu_throttled_s > 0.5
        busy = [s.cpu_cores for s in b.resource_samples() if s.cpu_cores and s.cpu_cores > 0.05]
        assert busy and max(busy) < 0.2  # never much above the 100m quota


def test_liveness_too_short_kills_restarts_and_backs_off(tmp_path: Path) -> None:
    probes = {
        "livenessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 2,
            "timeoutSeconds": 1,
        }
    }
    with LocalBackend(tmp_path, probe_jitter=False, backoff_scale=0.2) as b:
        b.deploy(bundle(deployment(load_s=30, probes=probes, grace=1)))
        b.wait_until(
            lambda: bool(b.pods()) and b.pods()[0].restarts >= 2, 120, what="two liveness restarts"
        )
        reasons = [
            e.reason
            for e in sorted(b.events(), key=lambda e: e.firstTimestamp)
            if e.involvedObject.kind == "Pod"
        ]
        assert "Unhealthy" in reasons and "Killing" in reasons and "BackOff" in reasons
        assert reasons.index("Unhealthy") < reasons.index("Killing") < reasons.index("BackOff")
        killing = [e for e in b.events() if e.reason == "Killing"]
        assert "failed liveness probe, will be restarted" in killing[0].message
        assert not b.pods()[0].ready
        term = b.pods()[0].containerStatuses[0].lastState.terminated
        assert term is not None and term.reason in ("Error", "Completed")


def test_readiness_gates_traffic(tmp_path: Path) -> None:
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(deployment(load_s=4)))
        b.wait_until(lambda: bool(b.pods()) and b.pods()[0].phase == "Running", 60, what="running")
        code, why = _get(b.service_url() + "/x")
        assert code == 503 and why == "no-ready-endpoints"  # running but not Ready: no traffic
        b.wait_ready(timeout_s=60)
        name = b.pods()[0].name
        code, pod = _get(b.service_url() + "/x")
        assert code == 200 and pod == name
        b.hang_pod(name)  # frozen: readiness fails, the endpoint goes away
        b.wait_until(lambda: not b.pods()[0].ready, 30, what="unready after hang")
        assert _get(b.service_url() + "/x")[0] == 503


def test_zone_outage_removes_exactly_that_zone(tmp_path: Path) -> None:
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(deployment(replicas=3, spread=True)))
        b.wait_ready(timeout_s=90)
        before = {p.name: p.zone for p in b.pods()}
        assert sorted(z or "" for z in before.values()) == ["zone-a", "zone-b", "zone-c"]
        victim = next(n for n, z in before.items() if z == "zone-b")
        pid_handles = b.state.pods[victim].handle
        fault = b.zone_outage("zone-b")
        assert fault.landed and victim in fault.affected
        assert [n for n in fault.affected if n in before] == [victim]
        assert pid_handles is not None and pid_handles.wait(10) is not None  # really dead
        b.wait_until(
            lambda: len(b.pods()) == 3 and all(p.name != victim for p in b.pods()),
            60,
            what="replacement",
        )
        survivors = {p.name for p in b.pods() if p.zone != "zone-b" and p.nodeName}
        assert set(before) - {victim} <= survivors
        # nodeTaintsPolicy Ignore trap: zone-b is still a domain with 0 pods -> replacement Pending
        pending = [p for p in b.pods() if p.name not in before]
        assert pending and pending[0].phase == "Pending" and pending[0].nodeName is None
        assert any(e.reason == "FailedScheduling" for e in b.events())
        nodes = {n.name: n for n in b.nodes()}
        assert all(not n.ready for n in nodes.values() if n.zone == "zone-b")
        b.restore_zone("zone-b")
        b.wait_ready(3, timeout_s=90)


def test_required_anti_affinity_leaves_the_extra_replica_pending(tmp_path: Path) -> None:
    dep = deployment(replicas=4)
    dep["spec"]["template"]["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"app": "standin"}},
                }
            ]
        }
    }
    with LocalBackend(tmp_path, probe_jitter=False) as b:  # 3 zones x 1 node
        b.deploy(bundle(dep))
        b.wait_ready(3, timeout_s=60)
        pods = b.pods()
        assert len({p.nodeName for p in pods if p.nodeName}) == 3  # one per node
        pending = [p for p in pods if p.nodeName is None]
        assert len(pending) == 1 and pending[0].phase == "Pending"
        cond = pending[0].condition("PodScheduled")
        assert cond is not None and cond.reason == "Unschedulable"
        assert "3 node(s) didn't match pod anti-affinity rules" in cond.message


def test_hpa_scales_up_under_load_and_back_down(tmp_path: Path) -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "standin"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "standin"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "vllm:num_requests_running"},
                        "target": {"type": "AverageValue", "averageValue": "1"},
                    },
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                },
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 4},
                "scaleUp": {"stabilizationWindowSeconds": 0},
            },
        },
    }
    with LocalBackend(
        tmp_path, probe_jitter=False, hpa_sync_period_s=1.0, metric_resolution_s=2.0
    ) as b:
        b.deploy(bundle(deployment(work_ms=300), hpa))
        b.wait_ready(timeout_s=60)
        stop = time.monotonic() + 40
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    textwrap.dedent(f"""
            import time, urllib.request
            end = time.monotonic() + 40
            while time.monotonic() < end:
                try: urllib.request.urlopen("{b.service_url()}/work", timeout=10).read()
                except Exception: time.sleep(0.05)
            """),
                ]
            )
            for _ in range(6)
        ]
        try:
            b.wait_until(
                lambda: b.deployment().spec.replicas >= 2 or time.monotonic() > stop,
                45,
                what="scale up",
            )
            assert b.deployment().spec.replicas >= 2
        finally:
            for p in procs:
                p.kill()
                p.wait()
        up_at = time.time()
        b.wait_until(lambda: b.deployment().spec.replicas == 1, 60, what="scale down")
        rescale = sorted(
            (e for e in b.events() if e.reason == "SuccessfulRescale"),
            key=lambda e: e.lastTimestamp,
        )
        assert len(rescale) >= 2 and "New size: 1" in rescale[-1].message
        # not before the 4 s stabilization window (the last high recommendation may predate
        # the end of the load by up to one 1 s sync period)
        assert rescale[-1].lastTimestamp - up_at >= 4 - 1.5
        history = b.hpa_history()
        assert history and any(s.desiredReplicas >= 2 for s in history)
        # both metrics reach the calculator: CPU from the replicas' cgroup or /proc accounting,
        # measured against the container's request (100m), and the Pods metric from /metrics
        active = [
            s
            for s in history
            if {c["type"]: c["status"] for c in s.conditions}.get("ScalingActive") == "True"
        ]
        assert len(active) >= len(history) - 2, [s.model_extra for s in history]  # reason=, error=
        cpu = [
            m["resource"]["current"]["averageUtilization"]
            for s in history
            for m in s.currentMetrics
            if m.get("type") == "Resource"
        ]
        pods_metric = [m for s in history for m in s.currentMetrics if m.get("type") == "Pods"]
        assert cpu and max(cpu) > 100 and pods_metric  # a busy replica runs ~1 core against 100m


RUNNER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {testdir!r})
    from standin_specs import bundle, deployment
    from harness.backends.local import LocalBackend
    from pathlib import Path
    b = LocalBackend(Path({workdir!r}), run_id="interrupt-test", probe_jitter=False)
    b.deploy(bundle(deployment(replicas=2, alloc_mb=1, memory_limit="256Mi")))
    print(b.run, flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interrupted_run_leaves_nothing(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    sig = rnd.choice([signal.SIGINT, signal.SIGTERM])
    script = RUNNER.format(testdir=str(Path(__file__).parent), workdir=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    run = proc.stdout.readline().strip()
    time.sleep(rnd.uniform(0.0, 3.0))  # a random moment: starting, loading, ready
    proc.send_signal(sig)
    proc.wait(60)
    leftovers = [p for p in _descendant_like(run)]
    assert leftovers == [], f"processes left after {sig.name}: {leftovers}"
    assert run not in cgroups.run_dirs()
    assert not (STATE_DIR / f"{run}.json").exists()


def _descendant_like(run: str) -> list[int]:
    """Replica processes of that run still alive.

    Their env carries POD_NAME; their cmdline, the server.
    """
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        try:
            if "standin_server.py" in " ".join(p.info["cmdline"] or []) and p.ppid() == 1:
                env = p.info["environ"] or {}
                if env.get("POD_NAME", "").startswith("standin"):
                    out.append(p.pid)
        except psutil.Error:
            continue
    return out


def test_cleanup_stale_removes_dead_owner_leftovers(tmp_path: Path, need_cgroups: None) -> None:
    script = RUNNER.format(testdir=str(Path(__file__).parent), workdir=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    run = proc.stdout.readline().strip()
    time.sleep(2)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(30)
    assert run in cgroups.run_dirs() or not (STATE_DIR / f"{run}.json").exists()
    removed = cleanup.cleanup_stale()
    assert run in removed or run not in cgroups.run_dirs()
    assert run not in cgroups.run_dirs()
