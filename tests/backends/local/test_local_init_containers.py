"""Init containers run in order, to completion, before the container; a failing one backs off."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from standin_specs import bundle, deployment

from harness.backends.local import LocalBackend

pytestmark = pytest.mark.timeout(120)


def _init(name: str, code: str) -> dict:
    return {
        "name": name,
        "image": "standin:dev",
        "command": [sys.executable, "-c", code],
        "resources": {"requests": {"cpu": "50m"}},
    }


def test_init_containers_complete_in_order_before_the_container(tmp_path: Path) -> None:
    work = tmp_path / "shared"
    work.mkdir()
    dep = deployment()
    dep["spec"]["template"]["spec"]["initContainers"] = [
        # the "download": takes a moment, leaves a file for the next one
        _init(
            "fetch-model",
            "import time, pathlib; time.sleep(1); "
            f"pathlib.Path({str(work / 'model')!r}).write_text('w')",
        ),
        # fails on its first two runs, succeeds on the third: the second retry waits a back-off
        # (the kubelet restarts at once after the first failure: 0, 10 s, 20 s, ... x 0.1 here)
        _init(
            "verify",
            "import pathlib, sys\n"
            f"d = pathlib.Path({str(work)!r})\n"
            "assert (d / 'model').exists()\n"
            "n = d / 'attempts'\n"
            "k = int(n.read_text()) + 1 if n.exists() else 1\n"
            "n.write_text(str(k))\n"
            "sys.exit(0 if k >= 3 else 3)\n",
        ),
    ]
    with LocalBackend(tmp_path / "run", probe_jitter=False, backoff_scale=0.1) as b:
        b.deploy(bundle(dep))
        # while the init containers run, the pod is Pending, not Initialized and not serving
        b.wait_until(
            lambda: (
                bool(b.pods())
                and bool(b.pods()[0].initContainerStatuses)
                and b.pods()[0].initContainerStatuses[0].state.running is not None
            ),
            30,
            what="first init running",
        )
        pod = b.pods()[0]
        assert pod.phase == "Pending" and not pod.ready
        init_cond = pod.condition("Initialized")
        assert (
            init_cond is not None
            and init_cond.status == "False"
            and "fetch-model, verify" in init_cond.message
        )
        main = pod.containerStatuses[0].state.waiting
        assert main is not None and main.reason == "PodInitializing"

        b.wait_ready(timeout_s=60)
        pod = b.pods()[0]
        fetch, verify = pod.initContainerStatuses
        assert fetch.state.terminated is not None and fetch.state.terminated.reason == "Completed"
        assert fetch.restartCount == 0 and fetch.ready
        assert verify.restartCount == 2 and verify.ready
        assert verify.lastState.terminated is not None and verify.lastState.terminated.exitCode == 3
        assert verify.state.terminated is not None and verify.state.terminated.exitCode == 0
        # ordering: fetch ended before verify began; the container started after both
        verify_first_start = verify.lastState.terminated.startedAt
        assert verify_first_start is not None
        assert fetch.state.terminated.finishedAt <= verify_first_start
        started = pod.containerStatuses[0].state.running
        assert started is not None and started.startedAt >= verify.state.terminated.finishedAt
        assert (
            pod.restarts == 0
        )  # init retries are counted on the init container, not the container
        initialized = [c for c in pod.conditionHistory if c.type == "Initialized"]
        assert [c.status for c in initialized] == ["False", "True"]
        events = [
            e
            for e in sorted(b.events(), key=lambda e: e.firstTimestamp)
            if e.involvedObject.kind == "Pod"
        ]
        started_events = [
            e for e in events if e.reason == "Started"
        ]  # repeats are aggregated (count)
        assert [(e.message.split()[-1], e.count) for e in started_events] == [
            ("fetch-model", 1),
            ("verify", 3),
            ("server", 1),
        ]
        assert any(e.reason == "BackOff" and "verify" in e.message for e in events)
        assert int((work / "attempts").read_text()) == 3


def test_pod_deleted_during_init_stops_it(tmp_path: Path) -> None:
    dep = deployment()
    dep["spec"]["template"]["spec"]["initContainers"] = [
        _init("wait-forever", "import time; time.sleep(600)")
    ]
    with LocalBackend(tmp_path, probe_jitter=False) as b:
        b.deploy(bundle(dep))
        b.wait_until(
            lambda: (
                bool(b.pods()) and b.pods()[0].initContainerStatuses[0].state.running is not None
            ),
            30,
            what="init running",
        )
        name = b.pods()[0].name
        t0 = time.monotonic()
        b.scale(0)
        b.wait_until(lambda: not any(p.name == name for p in b.pods()), 30, what="pod gone")
        assert time.monotonic() - t0 < 30  # SIGTERM ends it within the grace period (2 s)
        gone = next(p for p in b.pods(include_deleted=True) if p.name == name)
        term = gone.initContainerStatuses[0].state.terminated
        assert term is not None and term.reason == "Error"
        assert not any(e.reason == "Started" and "server" in e.message for e in b.events())
