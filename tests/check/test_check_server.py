"""`gauntlet check` knows the server it checks: vLLM's own flags (--shutdown-timeout,
--max-num-queued-reqs), its /health meaning, its waiting-queue metric in the HPA model; and the
vLLM manifests raise no false alarm."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.check.evaluate import run_checks
from harness.check.findings import Finding, Severity
from harness.check.targets import targets_for
from harness.check.workload import Workload
from harness.manifests.bundle import ManifestBundle
from harness.manifests.render import render
from harness.models.hpa import simulate
from harness.profile import Profile, load_profile
from harness.servers.command_line import flag_value

ROOT = Path(__file__).resolve().parents[2]
Objs = list[dict[str, Any]]
SERVER_RULES = ("server-drain", "server-queue-bound", "server-health-meaning")


@pytest.fixture(scope="module")
def vllm_objects() -> Objs:
    return render(ROOT / "manifests" / "vllm" / "local").objects


@pytest.fixture(scope="module")
def vllm_local() -> Profile:
    return load_profile("vllm-local")


def deployment(objs: Objs) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == "Deployment")


def container(objs: Objs) -> dict[str, Any]:
    return deployment(objs)["spec"]["template"]["spec"]["containers"][0]


def patched(objs: Objs, edit: Callable[[dict[str, Any]], None]) -> Objs:
    """A copy with `edit` applied to the vLLM container."""
    out = copy.deepcopy(objs)
    edit(container(out))
    return out


def set_args(*args: str) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        c["args"] = list(args)

    return edit


def without_flag(flag: str, objs: Objs) -> list[str]:
    return [a for a in container(objs)["args"] if not a.startswith(flag)]


def check(objs: Objs, profile: Profile) -> list[Finding]:
    return run_checks(ManifestBundle(copy.deepcopy(objs), source="test.yaml"), targets_for(profile))


def rule(findings: list[Finding], name: str) -> list[Finding]:
    return [f for f in findings if f.rule == name]


# --- the shipped vLLM manifests -------------------------------------------------------------


def test_vllm_local_has_no_error_or_warning(vllm_objects: Objs, vllm_local: Profile) -> None:
    found = check(vllm_objects, vllm_local)
    assert [f for f in found if f.severity is not Severity.info] == []
    # the drain timeout comes from --shutdown-timeout: no "drain timeout unknown" info
    assert rule(found, "grace-period") == []
    assert [f for f in found if f.rule in SERVER_RULES] == []


def test_flag_forms(vllm_objects: Objs) -> None:
    c = container(vllm_objects)
    assert flag_value(c, "--shutdown-timeout").number == 30
    two = {**c, "args": ["$(MODEL_DIR)", "--shutdown-timeout", "12", "--max_num_queued_reqs", "7"]}
    assert flag_value(two, "--shutdown-timeout").number == 12
    assert flag_value(two, "--max-num-queued-reqs").number == 7  # `_` spelling, as vLLM allows
    last = {**c, "args": ["--shutdown-timeout=5", "--shutdown-timeout", "9"]}
    assert flag_value(last, "--shutdown-timeout").number == 9  # argparse: the last one wins
    env = {
        **c,
        "args": ["--shutdown-timeout=$(DRAIN_S)"],
        "env": [*c.get("env", []), {"name": "DRAIN_S", "value": "21"}],
    }
    assert flag_value(env, "--shutdown-timeout").number == 21  # $(VAR) as the kubelet expands
    shell = {
        "command": ["/bin/sh", "-c"],
        "args": ["exec vllm serve /m --port 8000 --shutdown-timeout 17"],
    }
    assert flag_value(shell, "--shutdown-timeout").number == 17
    absent = flag_value({"args": ["/m"]}, "--shutdown-timeout")
    assert not absent.given and absent.known
    in_config = flag_value({"args": ["--config", "c.yaml"]}, "--shutdown-timeout")
    assert not in_config.given and not in_config.known


# --- server-drain and the grace period --------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--shutdown-timeout=0",),
        ("--shutdown-timeout", "0"),
    ],
    ids=["absent", "zero-equals", "zero-two-items"],
)
def test_server_drain_missing_is_an_error(
    vllm_objects: Objs, vllm_local: Profile, args: tuple[str, ...]
) -> None:
    rest = without_flag("--shutdown-timeout", vllm_objects)
    found = check(patched(vllm_objects, set_args(*rest, *args)), vllm_local)
    (f,) = rule(found, "server-drain")
    assert f.severity is Severity.error
    assert "aborts the requests in flight" in f.message
    # grace 45 - preStop 5 - margin 5
    assert f.fix.startswith("add --shutdown-timeout=35 ")
    assert f.field.endswith("containers[0].args")
    # the drain is known (none): no "drain timeout unknown" from grace-period either
    assert rule(found, "grace-period") == []


@pytest.mark.parametrize(
    "args", [("--shutdown-timeout=30",), ("--shutdown-timeout", "30")], ids=["equals", "two"]
)
def test_server_drain_set_is_quiet(
    vllm_objects: Objs, vllm_local: Profile, args: tuple[str, ...]
) -> None:
    rest = without_flag("--shutdown-timeout", vllm_objects)
    found = check(patched(vllm_objects, set_args(*rest, *args)), vllm_local)
    assert rule(found, "server-drain") == []
    assert rule(found, "grace-period") == []


def test_server_drain_fix_when_grace_has_no_room(vllm_objects: Objs, vllm_local: Profile) -> None:
    objs = patched(vllm_objects, set_args(*without_flag("--shutdown-timeout", vllm_objects)))
    deployment(objs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 8
    (f,) = rule(check(objs, vllm_local), "server-drain")
    assert "raise terminationGracePeriodSeconds to >= preStop 5 + N + 5 s" in f.fix


@pytest.mark.parametrize(
    "args", [("--shutdown-timeout=60",), ("--shutdown-timeout", "60")], ids=["equals", "two"]
)
def test_grace_shorter_than_prestop_plus_shutdown_timeout(
    vllm_objects: Objs, vllm_local: Profile, args: tuple[str, ...]
) -> None:
    rest = without_flag("--shutdown-timeout", vllm_objects)
    found = check(patched(vllm_objects, set_args(*rest, *args)), vllm_local)
    (f,) = rule(found, "grace-period")
    assert f.severity is Severity.error
    assert "grace period 45 s is shorter than preStop 5 s + drain 60 s" in f.message
    assert f.required == ">= preStop 5 s + --shutdown-timeout 60 s = 65 s"
    assert "--shutdown-timeout" in f.fix
    assert rule(found, "server-drain") == []  # one rule per flaw


def test_grace_counts_an_exec_sleep_prestop(vllm_objects: Objs, vllm_local: Profile) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 20"]}}}

    (f,) = rule(check(patched(vllm_objects, edit), vllm_local), "grace-period")
    assert f.required == ">= preStop 20 s + --shutdown-timeout 30 s = 50 s"


def test_vllm_env_shutdown_timeout_is_not_the_drain(
    vllm_objects: Objs, vllm_local: Profile
) -> None:
    """VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS matches *SHUTDOWN*TIMEOUT* but is no drain."""

    def edit(c: dict[str, Any]) -> None:
        c["env"].append({"name": "VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS", "value": "500"})

    found = check(patched(vllm_objects, edit), vllm_local)
    assert rule(found, "grace-period") == []


def test_drain_flag_in_a_config_file_is_unknown(vllm_objects: Objs, vllm_local: Profile) -> None:
    rest = without_flag("--shutdown-timeout", vllm_objects)
    found = check(patched(vllm_objects, set_args(*rest, "--config", "/etc/vllm.yaml")), vllm_local)
    (f,) = rule(found, "grace-period")
    assert f.severity is Severity.info and "--config may set it" in f.message
    assert rule(found, "server-drain") == []


# --- server-queue-bound -------------------------------------------------------------------------


def test_queue_unbounded_is_a_warning(vllm_objects: Objs, vllm_local: Profile) -> None:
    rest = without_flag("--max-num-queued-reqs", vllm_objects)
    (f,) = rule(check(patched(vllm_objects, set_args(*rest)), vllm_local), "server-queue-bound")
    assert f.severity is Severity.warning
    assert "unbounded" in f.message
    assert f.fix.startswith("add --max-num-queued-reqs=<N>") and "--max-num-seqs 16" in f.fix


@pytest.mark.parametrize(
    ("args", "severity"),
    [
        (("--max-num-queued-reqs", "64"), None),
        (("--max-num-queued-reqs=0",), Severity.error),
        (("--max-num-queued-reqs", "8"), Severity.info),  # below --max-num-seqs 16
    ],
    ids=["two-items", "zero", "below-batch"],
)
def test_queue_bound_values(
    vllm_objects: Objs, vllm_local: Profile, args: tuple[str, ...], severity: Severity | None
) -> None:
    rest = without_flag("--max-num-queued-reqs", vllm_objects)
    found = rule(
        check(patched(vllm_objects, set_args(*rest, *args)), vllm_local), "server-queue-bound"
    )
    assert [f.severity for f in found] == ([severity] if severity else [])


# --- server-health-meaning ----------------------------------------------------------------------


def test_readiness_on_health_is_an_info(vllm_objects: Objs, vllm_local: Profile) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["readinessProbe"]["httpGet"]["path"] = "/health"
        c["livenessProbe"] = {"tcpSocket": {"port": "http"}, "periodSeconds": 5}

    found = check(patched(vllm_objects, edit), vllm_local)
    (f,) = rule(found, "server-health-meaning")
    assert f.severity is Severity.info and f.fix == "point readinessProbe at /v1/models"
    assert rule(found, "readiness-is-liveness") == []


def test_readiness_and_liveness_on_health_is_reported_once(
    vllm_objects: Objs, vllm_local: Profile
) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["readinessProbe"]["httpGet"]["path"] = "/health"

    found = check(patched(vllm_objects, edit), vllm_local)
    assert rule(found, "server-health-meaning") == []
    (f,) = rule(found, "readiness-is-liveness")
    assert "/v1/models" in f.fix  # the fix names vLLM's endpoint, not the reference's /ready


def test_vllm_fixes_name_vllm_endpoints(vllm_objects: Objs, vllm_local: Profile) -> None:
    def edit(c: dict[str, Any]) -> None:
        del c["readinessProbe"], c["livenessProbe"]

    found = check(patched(vllm_objects, edit), vllm_local)
    assert "/v1/models" in rule(found, "readiness-missing")[0].fix
    assert "/health)" in rule(found, "liveness-missing")[0].fix


def test_reference_service_gets_no_server_findings() -> None:
    objs = render(ROOT / "manifests" / "overlays" / "local").objects
    found = check(objs, load_profile("local"))
    assert [f for f in found if f.rule in SERVER_RULES] == []


# --- the HPA on vLLM's waiting queue ------------------------------------------------------------


def hpa(objs: Objs) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler")


def test_waiting_queue_hpa_scales_in_the_simulated_spike(
    vllm_objects: Objs, vllm_local: Profile
) -> None:
    assert rule(check(vllm_objects, vllm_local), "hpa-scale-out") == []


def test_waiting_target_above_the_queue_bound_never_scales(
    vllm_objects: Objs, vllm_local: Profile
) -> None:
    objs = copy.deepcopy(vllm_objects)
    # 64 running + waiting - 16 running = 48 can wait per replica: a target of 60 is never met
    hpa(objs)["spec"]["metrics"][0]["pods"]["target"]["averageValue"] = "60"
    (f,) = rule(check(objs, vllm_local), "hpa-scale-out")
    assert f.severity is Severity.warning and "never scales up" in f.message
    assert "at most 48 requests per replica" in f.message
    assert "below 48" in f.fix


def test_adapter_renamed_waiting_metric_is_a_queue(vllm_objects: Objs, vllm_local: Profile) -> None:
    objs = copy.deepcopy(vllm_objects)
    hpa(objs)["spec"]["metrics"][0]["pods"]["metric"]["name"] = "vllm_num_requests_waiting"
    hpa(objs)["spec"]["metrics"][0]["pods"]["target"]["averageValue"] = "60"
    assert "at most 48" in rule(check(objs, vllm_local), "hpa-scale-out")[0].message


def test_queue_model_waits_only_past_capacity(vllm_objects: Objs) -> None:
    name = "vllm:num_requests_waiting"
    h = hpa(vllm_objects)
    common: dict[str, Any] = {"capacity_per_replica": 15, "cold_start_s": 90, "duration_s": 120}
    below = simulate(h, traffic=[(0, 8), (15, 29)], queue_metrics={name: None}, **common)
    assert below.first_scale_up_s is None  # 29 rps on 2 x 15: nothing waits
    assert {x["waitingPerReadyReplica"][name] for x in below.timeline} == {0.0}
    above = simulate(h, traffic=[(0, 8), (15, 34.5)], queue_metrics={name: 48}, **common)
    # 4.5 rps over capacity for 15 s = 67.5 waiting on 2 replicas at the sync after the spike
    assert above.timeline[2]["waitingPerReadyReplica"][name] == 33.75
    assert above.timeline[3]["waitingPerReadyReplica"][name] == 48  # capped per replica
    assert above.first_scale_up_s == 30
    # the load model (target = value at capacity) would read 1.6 waiting at 80 % load
    linear = simulate(h, traffic=[(0, 8), (15, 24)], metric_at_capacity={name: 2}, **common)
    assert linear.timeline[1]["loadPerReadyReplica"] == 0.8


# --- the CLI on manifests built in a tmp dir ----------------------------------------------------


def gauntlet_check(manifests: Path, profile: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from harness.cli import main; main(sys.argv[1:])",
            "check",
            "--format",
            "json",
            "--manifests",
            str(manifests),
            "--profile",
            profile,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_cli_on_a_patched_copy_of_vllm_local(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests" / "vllm", tmp_path / "vllm")
    patch = tmp_path / "vllm" / "local" / "deployment-patch.yaml"
    doc = yaml.safe_load(patch.read_text())
    c = doc["spec"]["template"]["spec"]["containers"][0]
    c["args"] = [
        a for a in c["args"] if not a.startswith(("--shutdown-timeout", "--max-num-queued-reqs"))
    ]
    patch.write_text(yaml.safe_dump(doc, sort_keys=False))
    rc, report = gauntlet_check(tmp_path / "vllm" / "local", "vllm-local")
    got = {(f["rule"], f["severity"]) for f in report["findings"]}
    assert rc == 1
    assert {("server-drain", "error"), ("server-queue-bound", "warning")} <= got
    assert not any(f["rule"] == "grace-period" for f in report["findings"])


def test_workload_server_kind(vllm_objects: Objs) -> None:
    w = Workload(deployment(vllm_objects), "test.yaml")
    assert w.server.name == "vllm" and w.server_indexes() == [0]
