"""What the local backend does not reproduce reaches the verdict as a caveat, never silently."""

from __future__ import annotations

from pathlib import Path

from standin_specs import bundle, deployment

from harness.backends.local import LocalBackend
from harness.profile import load_profile
from harness.scenarios import common
from harness.scenarios.base import ScenarioContext
from harness.verdict import Check


def test_a_sidecar_not_run_locally_is_a_verdict_caveat(tmp_path: Path) -> None:
    dep = deployment()
    spec = dep["spec"]["template"]["spec"]
    spec["containers"].append({"name": "log-shipper", "image": "shipper:1", "command": ["true"]})
    ctx = ScenarioContext(
        profile=load_profile("local"),
        bundle=bundle(dep),
        backend_factory=lambda d: LocalBackend(d, probe_jitter=False),
        backend_name="local",
        out_dir=tmp_path / "scenario",
    )
    with ctx.deploy(timeout_s=60) as backend:
        assert backend.deployment_status().readyReplicas == 1
    verdict = common.finish(
        ctx, "probe-timing", [Check(name="c", measured=1, target=1, ok=True)], [], {}
    )
    assert verdict.status == "pass"
    assert any("did not reproduce" in c and "log-shipper" in c for c in verdict.caveats), (
        verdict.caveats
    )
