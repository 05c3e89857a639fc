"""`gauntlet model` end to end on the documented example files, and input errors naming fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli.model import model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


@pytest.mark.parametrize("cmd", ["hpa", "probes", "spread"])
def test_documented_examples_run(cmd):
    res = CliRunner().invoke(
        model, [cmd, "--input", str(EXAMPLES / f"model-{cmd}.yaml"), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    if cmd == "hpa":
        # 950m + 870m over 2 x 1 CPU -> 91 % vs 65 % -> ratio 1.4 -> ceil(2.8) = 3
        assert out["decision"]["desiredReplicas"] == 3
        assert out["simulation"]["neededReplicas"] == 10
    elif cmd == "probes":
        assert out["killEarliestSeconds"] == 110 and out["outcomes"][-1] == "killed"
    else:
        assert out["stranded"] == 2 and out["after"]["pending"] == 2


def test_cluster_copied_hpa_example_runs():
    """model-hpa-custom.yaml: a MetricValueList, the HPA's own status, controller flags."""
    res = CliRunner().invoke(
        model, ["hpa", "--input", str(EXAMPLES / "model-hpa-custom.yaml"), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["specReplicasFrom"] == "hpa.status.currentReplicas"
    d = out["decision"]
    # (4.5 + 3.5 + 5) / 3 = 4333m vs 2 -> ceil(2.1665 * 3) = 7; scaleUp Pods 4 / 15 s allows 3 + 4
    assert (d["currentReplicas"], d["desiredReplicas"]) == (3, 7)
    assert d["currentMetrics"][0]["pods"]["current"] == {"averageValue": "4333m"}
    # True stays True: the pasted transition time is kept; the rescale stamps lastScaleTime
    able = next(c for c in d["conditions"] if c["type"] == "AbleToScale")
    assert (able["reason"], able["lastTransitionTime"]) == (
        "SucceededRescale",
        "2026-12-01T08:40:02Z",
    )
    assert d["lastScaleTime"] == "2026-12-01T09:13:40Z"


def test_input_error_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hpa:\n  spec: {maxReplicas: 3, metrics: [{type: Bogus}]}\npods: []\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harness.cli import main; main()",
            "model",
            "hpa",
            "--input",
            str(bad),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "bad.yaml: hpa.spec.metrics[0].type" in proc.stderr and "Traceback" not in proc.stderr
    missing = tmp_path / "m.yaml"
    missing.write_text("pod: {spec: {containers: [{name: a}]}}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harness.cli import main; main()",
            "model",
            "probes",
            "--input",
            str(missing),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "loadSeconds" in proc.stderr
