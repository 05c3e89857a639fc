"""`gauntlet check`.

Every broken variant is caught by its rule, good overlays pass, bad input = 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.manifests.render import render

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"

EXPECTED = {
    "memory-limit-too-low": "memory-headroom",
    "liveness-no-startup": "startup-kill",
    "no-readiness": "readiness-missing",
    "maxreplicas-too-low": "hpa-max-replicas",
    "no-zone-spread": "zone-pinned",
    "pdb-blocks-drain": "pdb-blocks-drain",
    "grace-shorter-than-drain": "grace-period",
    "spread-honor-missing": "zone-spread-taints-ignored",
}


def gauntlet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from harness.cli import main; main(sys.argv[1:])",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=False,
    )


def check_json(*args: str) -> tuple[int, dict]:
    proc = gauntlet("check", "--format", "json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def errors(report: dict) -> set[str]:
    return {f["rule"] for f in report["findings"] if f["severity"] == "error"}


@pytest.mark.parametrize(("variant", "rule"), sorted(EXPECTED.items()))
def test_broken_variant_yields_its_finding(variant: str, rule: str) -> None:
    rc, report = check_json("--manifests", str(MANIFESTS / "broken" / variant))
    assert rc == 1
    assert errors(report) == {rule}, report["findings"]
    f = next(f for f in report["findings"] if f["rule"] == rule)
    assert f["resource"] and f["field"] and f["fix"] and f["measured"] and f["required"]


@pytest.mark.parametrize(
    ("overlay", "profile"),
    [("local", "local"), ("kind", "local"), ("gpu", "seed"), ("istio", "local"), ("gpu", "local")],
)
def test_good_overlays_have_no_errors(overlay: str, profile: str) -> None:
    rc, report = check_json(
        "--manifests", str(MANIFESTS / "overlays" / overlay), "--profile", profile
    )
    assert rc == 0 and not errors(report), report["findings"]


def test_article_manifest_findings() -> None:
    rc, report = check_json(
        "--manifests", str(ROOT / "docs/examples/article-deployment.yaml"), "--profile", "seed"
    )
    assert rc == 1
    rules = {f["rule"] for f in report["findings"]}
    # seed.md: liveness 30 s + 3 x 10 s vs a 47 s load, no readiness, CPU HPA on a GPU
    # service, no disruption budget, no zone spread.
    assert {
        "startup-kill",
        "readiness-missing",
        "hpa-gpu-cpu-signal",
        "pdb-missing",
        "zone-spread-missing",
    } <= rules
    kill = next(f for f in report["findings"] if f["rule"] == "startup-kill")
    assert "50" in kill["measured"] and "70.5" in kill["required"]


def test_measured_values_override_declared(tmp_path: Path) -> None:
    measured = tmp_path / "report.json"
    # A report in the certification schema's shape: values under scenarios[].measurements.
    measured.write_text(
        json.dumps(
            {
                "scenarios": [
                    {"name": "oom_headroom", "measurements": {"peak_memory_bytes": 700 * 2**20}},
                    {"name": "hpa", "measurements": {"capacity_rps_per_replica": 4.0}},
                    {"name": "cold_start", "measurements": {"cold_start_p95_s": 50.0}},
                ]
            }
        )
    )
    rc, report = check_json(
        "--manifests", str(MANIFESTS / "overlays" / "local"), "--measured", str(measured)
    )
    assert rc == 1
    # 700 MiB > 0.75 x 800 MiB; 9 x 4 rps < 5 x 10 rps; startup budget 44 s < 50 x 1.5;
    # two surviving replicas x 4 rps < 10 rps baseline.
    assert {"memory-headroom", "hpa-max-replicas", "startup-kill", "zone-capacity"} <= errors(
        report
    )
    assert report["targets"]["cold_start_p95_s"]["basis"].startswith("measured")


def test_measured_top_level_block_passes_local(tmp_path: Path) -> None:
    measured = tmp_path / "m.json"
    measured.write_text(
        json.dumps(
            {
                "measured": {
                    "cold_start_p95_s": 9.0,
                    "peak_memory_bytes": 480 * 2**20,
                    "capacity_rps_per_replica": 20.0,
                }
            }
        )
    )
    rc, report = check_json(
        "--manifests", str(MANIFESTS / "overlays" / "local"), "--measured", str(measured)
    )
    assert rc == 0, report["findings"]


def test_text_output_and_exit_codes() -> None:
    proc = gauntlet("check", "--manifests", str(MANIFESTS / "broken" / "no-readiness"))
    assert proc.returncode == 1
    assert "readiness-missing" in proc.stdout and "fix:" in proc.stdout


@pytest.mark.parametrize(
    "content",
    [
        "kind: [oops\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n",
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    proc = gauntlet("check", "--manifests", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr


def test_bad_measured_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"measured": {"peak_memory_bytes": "lots"}}))
    proc = gauntlet(
        "check", "--manifests", str(MANIFESTS / "overlays" / "local"), "--measured", str(bad)
    )
    assert proc.returncode == 2 and "measured.peak_memory_bytes" in proc.stderr
    proc = gauntlet("check", "--manifests", str(ROOT / "nope"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_required_zone_anti_affinity_caps_the_hpa_and_strands_a_lost_zone(tmp_path: Path) -> None:
    docs = list(render(str(MANIFESTS / "overlays" / "local")).objects)
    for d in docs:
        if d.get("kind") == "HorizontalPodAutoscaler":
            d["spec"]["minReplicas"] = 3
            d["spec"]["maxReplicas"] = 4  # above the 3 zones: the 4th replica stays Pending
        if d.get("kind") == "Deployment":
            d["spec"]["replicas"] = 3  # one per zone: a lost zone's replica has nowhere to go
            spec = d["spec"]["template"]["spec"]
            spec.pop("topologySpreadConstraints")
            spec["affinity"] = {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "topologyKey": "topology.kubernetes.io/zone",
                            "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/name": "gauntlet-inference"}
                            },
                        }
                    ]
                }
            }
    path = tmp_path / "anti.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    rc, report = check_json("--manifests", str(path))
    assert rc == 1
    assert errors(report) == {"zone-anti-affinity-caps-replicas", "zone-anti-affinity-strands"}, (
        report["findings"]
    )
    strands = next(f for f in report["findings"] if f["rule"] == "zone-anti-affinity-strands")
    assert strands["measured"] == "1 of 1 replicas from the lost zone stay Pending"
    assert strands["basis"] == "harness.models.scheduler.placement"
