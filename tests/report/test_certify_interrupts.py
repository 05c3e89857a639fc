"""certify interrupted (SIGINT / SIGTERM) at several points, a real load included.

Fake scenarios on a fake backend, with the real load engine (locust workers) against the
loopback test server. The signal is sent to this process from a watcher thread once the run is
at the point under test (a deploy hook, a load's own worker files), so each case is
deterministic. Every case must end interrupted (exit 130, `interrupted` true, the scenario in
`interrupted_during` and `not_run`), never as an `error` verdict, with no locust worker left
and the interrupted scenario's evidence folder kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakes_report
import psutil
import pytest
from fakes_report import quiet

from harness.load import LoadSpec
from harness.report import load_report
from harness.run import engine, options
from harness.run.engine import EXIT_INTERRUPTED, certify, exit_code
from harness.run.options import CertifyOptions
from harness.scenarios import base as scenarios_base
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.verdict import Check, Verdict

LOOPBACK = Path(__file__).resolve().parents[1] / "load" / "loopback_server.py"
LOAD_S = 30.0  # longer than any case waits: only the interrupt ends these loads

# per-test hooks the fake backend calls for the case's own deployment (probe-timing): name -> fn
HOOKS: dict[str, Callable[[], None]] = {}
STATE: dict[str, Any] = {}


class LoopbackBackend(fakes_report.FakeBackend):
    """FakeBackend whose Service is the loopback server, with hooks at deploy/ready/teardown."""

    def deploy(self, bundle: Any) -> None:
        self._hook("deploy")
        super().deploy(bundle)

    def wait_ready(self, replicas: int | None = None, timeout_s: float = 300.0) -> Any:
        self._hook("wait_ready")
        return super().wait_ready(replicas, timeout_s)

    def teardown(self) -> None:
        self._hook("teardown")
        super().teardown()

    def pods(self, include_deleted: bool = False) -> list[Any]:
        self._hook("pods")
        return super().pods(include_deleted)

    def service_url(self) -> str:
        return str(STATE["url"])

    def _hook(self, name: str) -> None:
        fn = HOOKS.get(name)
        if fn is not None and self.workdir.parent.name == "probe-timing":
            fn()


def _spec(ctx: ScenarioContext, url: str) -> LoadSpec:
    return LoadSpec(
        target=url,
        path="/v1/completions",
        body={"prompt": "hi"},
        arrival="constant",
        rate_rps=40,
        duration_s=LOAD_S,
        timeout_s=2.0,
    )


def _verdict(ctx: ScenarioContext, name: str) -> Verdict:
    return Verdict.from_checks(
        name, ctx.profile.name, [Check(name="ran", measured=True, target=True, ok=True)]
    )


# fake scenarios -------------------------------------------------------------------------------
def quick(ctx: ScenarioContext) -> Verdict:
    with ctx.deploy():
        pass
    return _verdict(ctx, "cold-start")


def deploy_only(ctx: ScenarioContext) -> Verdict:
    with ctx.deploy():
        ctx.write_json("before.json", {"ok": True})
    return _verdict(ctx, "probe-timing")


def blocking_load(ctx: ScenarioContext) -> Verdict:
    """common.run_load: the main thread blocks in LoadHandle.wait (oom-headroom, hpa)."""
    with ctx.deploy() as backend:
        common.run_load(ctx, _spec(ctx, backend.service_url()), "load")
    return _verdict(ctx, "probe-timing")


def background_sleep(ctx: ScenarioContext) -> Verdict:
    """common.background_load while the scenario does other work (zone-failure's faults)."""
    with ctx.deploy() as backend, common.background_load(ctx, _spec(ctx, backend.service_url())):
        end = time.monotonic() + LOAD_S
        while time.monotonic() < end:
            time.sleep(0.05)
    return _verdict(ctx, "probe-timing")


def background_wait(ctx: ScenarioContext) -> Verdict:
    """common.background_load, the scenario waiting for its result (probe-timing)."""
    with (
        ctx.deploy() as backend,
        common.background_load(ctx, _spec(ctx, backend.service_url())) as h,
    ):
        h.wait(timeout=LOAD_S + 60)
    return _verdict(ctx, "probe-timing")


def cleanup_raises(ctx: ScenarioContext) -> Verdict:
    """A clean-up step that fails while the interrupt unwinds: the interrupt must win."""
    with ctx.deploy():
        try:
            STATE["signaller"].now(signal.SIGINT)
            _sleep_until_interrupted()
        except KeyboardInterrupt:
            raise RuntimeError("port-forward already closed") from None
    return _verdict(ctx, "probe-timing")


# fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loopback_url() -> Iterator[str]:
    p = subprocess.Popen(
        [sys.executable, str(LOOPBACK), "--delay-ms", "2"], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    port = int(p.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, fake_env: Callable[[dict[str, str]], None], loopback_url: str
) -> Iterator[Callable[[str], None]]:
    """Registry: cold-start (passes), probe-timing = the case under test, hpa (never reached)."""
    fake_env({})
    HOOKS.clear()
    STATE.clear()
    STATE["url"] = loopback_url
    monkeypatch.setattr(options, "make_backend_factory", lambda name, opts: LoopbackBackend)

    def use(case: str) -> None:
        monkeypatch.setattr(
            scenarios_base,
            "SCENARIOS",
            {
                "cold-start": f"{__name__}:quick",
                "probe-timing": f"{__name__}:{case}",
                "hpa": f"{__name__}:quick",
            },
        )

    yield use
    HOOKS.clear()


class Signaller:
    """Sends signals to this process from a thread once a condition holds."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.at: list[float] = []  # time.monotonic() of each signal
        self.errors: list[str] = []

    def when(
        self, cond: Callable[[], bool], sig: int = signal.SIGINT, timeout_s: float = 120.0
    ) -> None:
        def run() -> None:
            end = time.monotonic() + timeout_s
            while time.monotonic() < end:
                try:
                    if cond():
                        break
                except Exception:  # a file being written: look again
                    pass
                time.sleep(0.01)
            else:
                self.errors.append("condition never held")
                return
            self.now(sig)

        threading.Thread(target=run, daemon=True).start()

    def now(self, sig: int = signal.SIGINT) -> None:
        self.sent.append(sig)
        self.at.append(time.monotonic())
        os.kill(os.getpid(), sig)


def _sleep_until_interrupted(s: float = 30.0) -> None:
    end = time.monotonic() + s
    while time.monotonic() < end:
        time.sleep(0.01)
    raise AssertionError("the signal never arrived")


def _sent(run_dir: Path, n: int) -> bool:
    """The probe-timing load is running: its workers have sent `n` requests."""
    wdir = run_dir / "probe-timing" / "load" / "workers"
    total = 0
    for f in wdir.glob("progress-*.json"):
        total += json.loads(f.read_text()).get("sent", 0)
    return total >= n


def _locust_children(under: Path | None = None) -> list[psutil.Process]:
    """Live locust workers of this process (those with files in `under`, if given)."""
    out = []
    for c in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(c.cmdline())
            if (
                "locust" in cmd
                and (under is None or str(under) in cmd)
                and c.status() != psutil.STATUS_ZOMBIE
            ):
                out.append(c)
        except psutil.Error:
            pass
    return out


def _certify(tmp_path: Path, manifests: Path) -> tuple[int, Path, float]:
    t0 = time.monotonic()
    opts = CertifyOptions(manifests=str(manifests), out=tmp_path / "run", html=False)
    try:
        report, run_dir = certify(opts, console=quiet())
    except KeyboardInterrupt:  # must never escape: it would also stop this pytest session
        pytest.fail("KeyboardInterrupt escaped certify()")
    return exit_code(report), run_dir, time.monotonic() - t0


def _assert_interrupted(code: int, run_dir: Path, sig: Signaller) -> None:
    assert not sig.errors
    assert code == EXIT_INTERRUPTED == 130
    raw = json.loads((run_dir / "report.json").read_text())
    report = load_report(run_dir)
    assert raw["interrupted"] is True and report.result == "interrupted"
    assert report.interrupted_during == "probe-timing"
    assert report.not_run == ["probe-timing", "hpa"]
    assert [(s.name, s.verdict) for s in report.scenarios] == [("cold-start", "pass")]
    assert not any(s.verdict == "error" for s in report.scenarios)
    assert not (run_dir / "probe-timing" / "error.txt").exists()
    assert (run_dir / "probe-timing").is_dir()  # the interrupted scenario's evidence folder
    assert (run_dir / "junit.xml").is_file()
    assert not _locust_children(), "a locust worker outlived the run"
    # every backend that was built was torn down
    assert len(fakes_report.FakeBackend.torn_down) == len(fakes_report.FakeBackend.created)


def _assert_load_kept(run_dir: Path, max_duration_s: float = LOAD_S) -> dict[str, Any]:
    """The stopped load's partial output: load.json and the per-request records."""
    out = run_dir / "probe-timing" / "load"
    data = json.loads((out / "load.json").read_text())
    assert data["stopped_early"] is True
    assert data["requests"] > 0 and data["duration_s"] < max_duration_s
    assert (out / "records.npy").is_file()
    return data


# the cases -----------------------------------------------------------------------------------
def test_sigterm_during_deploy(tmp_path, manifests_file, env):
    env("deploy_only")
    sig = Signaller()
    waiting = threading.Event()

    def wait_ready() -> None:
        waiting.set()
        _sleep_until_interrupted()

    HOOKS["wait_ready"] = wait_ready
    sig.when(waiting.is_set, signal.SIGTERM)
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)
    assert not (run_dir / "probe-timing" / "before.json").exists()


@pytest.mark.parametrize("phase", ["launching", "importing"])
def test_sigint_while_load_workers_start(tmp_path, manifests_file, env, phase):
    """While the worker is launched, or is importing locust (not ready): the stop must neither
    leave the worker behind nor turn into a SetupError."""
    env("blocking_load")
    sig = Signaller()
    w = tmp_path / "run" / "probe-timing" / "load" / "workers"

    def starting() -> bool:
        if phase == "launching":
            return (w / "config-0.json").exists()
        return bool(_locust_children(w)) and not (w / "ready-0.json").exists()

    sig.when(starting)
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)


def test_sigint_during_a_blocking_load_keeps_its_output(tmp_path, manifests_file, env):
    """The issue's path: the signal lands in LoadHandle.wait (run_load). It used to end as an
    `error` verdict (AssertionError in LoadHandle.wait) with exit 1."""
    env("blocking_load")
    sig = Signaller()
    sig.when(lambda: _sent(tmp_path / "run", 20))
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)
    _assert_load_kept(run_dir)
    assert "AssertionError" not in (run_dir / "certify.log").read_text()


def test_sigterm_while_a_background_load_runs(tmp_path, manifests_file, env):
    """The scenario is busy while its load runs: the load is stopped at once (not run to its
    end) and its partial load.json is kept, copied up like a finished one."""
    env("background_sleep")
    sig = Signaller()
    sig.when(lambda: _sent(tmp_path / "run", 20), signal.SIGTERM)
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)
    data = _assert_load_kept(run_dir)
    assert json.loads((run_dir / "probe-timing" / "load.json").read_text()) == data
    assert time.monotonic() - sig.at[0] < LOAD_S / 2  # stopped, not waited out


def test_sigint_while_waiting_for_a_background_load(tmp_path, manifests_file, env):
    env("background_wait")
    sig = Signaller()
    sig.when(lambda: _sent(tmp_path / "run", 20))
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)
    data = _assert_load_kept(run_dir)
    assert json.loads((run_dir / "probe-timing" / "load.json").read_text()) == data
    assert time.monotonic() - sig.at[0] < LOAD_S / 2


@pytest.mark.parametrize("where", ["teardown", "save"])
def test_second_signal_during_cleanup_is_ignored(tmp_path, manifests_file, env, monkeypatch, where):
    """Interrupted in deploy; a second signal while the backend is torn down, or while the
    partial report is saved: teardown completes and the report is still marked interrupted."""
    env("deploy_only")
    sig = Signaller()
    waiting = threading.Event()
    finished: list[str] = []

    def wait_ready() -> None:
        waiting.set()
        _sleep_until_interrupted()

    def teardown() -> None:
        if where == "teardown":
            sig.now(signal.SIGTERM)  # the second signal, in the middle of teardown
        time.sleep(0.2)
        finished.append("teardown")

    HOOKS["wait_ready"] = wait_ready
    HOOKS["teardown"] = teardown
    original_save = engine.Run.save

    def save(self: engine.Run) -> None:
        if where == "save" and self.report.interrupted and len(sig.sent) == 1:
            sig.now(signal.SIGINT)  # the second signal, while the partial report is written
        original_save(self)

    monkeypatch.setattr(engine.Run, "save", save)
    sig.when(waiting.is_set, signal.SIGINT)
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    assert finished == ["teardown"], "teardown did not complete"
    assert len(sig.sent) == 2
    _assert_interrupted(code, run_dir, sig)


def test_sigint_while_saving_observations_still_tears_down(tmp_path, manifests_file, env):
    """Interrupted while ctx.deploy() writes pods/events.json: the backend is still torn down."""
    env("deploy_only")
    sig = Signaller()
    HOOKS["pods"] = lambda: sig.now(signal.SIGINT) if not sig.sent else None
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)
    assert (run_dir / "probe-timing" / "before.json").is_file()  # partial evidence is kept


def test_sigterm_during_teardown_waits_for_the_teardown(tmp_path, manifests_file, env):
    """The first signal lands in the backend's teardown: the teardown runs to its end (nothing
    is left behind), then the run is interrupted."""
    env("deploy_only")
    sig = Signaller()
    entered = threading.Event()
    steps: list[str] = []

    def teardown() -> None:
        entered.set()
        for step in ("processes", "cgroups", "state"):  # the signal arrives during these
            time.sleep(0.3)
            steps.append(step)

    HOOKS["teardown"] = teardown
    sig.when(entered.is_set, signal.SIGTERM)
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)
    assert steps == ["processes", "cgroups", "state"], "the interrupt cut the teardown short"
    assert (run_dir / "probe-timing" / "before.json").is_file()


def test_cli_exits_130_on_sigterm_during_load(tmp_path, manifests_file, env):
    from harness.cli import main

    env("blocking_load")
    sig = Signaller()
    sig.when(lambda: _sent(tmp_path / "run", 20), signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "certify",
                "--manifests",
                str(manifests_file),
                "--out",
                str(tmp_path / "run"),
                "--no-html",
            ]
        )
    assert exc.value.code == 130
    _assert_interrupted(130, tmp_path / "run", sig)
    _assert_load_kept(tmp_path / "run")


def test_an_interrupt_turned_into_another_error_is_still_an_interrupt(
    tmp_path, manifests_file, env
):
    env("cleanup_raises")
    sig = STATE["signaller"] = Signaller()
    code, run_dir, _ = _certify(tmp_path, manifests_file)
    _assert_interrupted(code, run_dir, sig)
