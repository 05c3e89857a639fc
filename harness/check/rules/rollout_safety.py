"""Rollout rules: a GPU rollout that needs a free GPU can deadlock; long cold starts vs the
progress deadline; images that are not pinned."""

from __future__ import annotations

from harness.check.findings import Finding
from harness.check.rules._base import finding
from harness.check.targets import Targets
from harness.check.workload import ROLLING_UPDATE, Workload, scaled


def gpu_surge(w: Workload, t: Targets) -> list[Finding]:
    if w.kind != "Deployment" or not w.uses_gpu():
        return []
    strategy = (w.obj.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return []
    ru = strategy.get("rollingUpdate") or {}
    n = w.spec_replicas
    surge = scaled(w, ru.get("maxSurge", "25%"), n, True, f"{ROLLING_UPDATE}.maxSurge")
    unavailable = scaled(
        w, ru.get("maxUnavailable", "25%"), n, False, f"{ROLLING_UPDATE}.maxUnavailable"
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    if surge > 0 and unavailable == 0:
        return [
            finding(
                w,
                "gpu-rollout-deadlock",
                "error",
                ROLLING_UPDATE,
                "a GPU rollout must first start a surge pod, which needs a free GPU; when every "
                "GPU is taken (the usual state at scale) it stays Pending and, with no pod allowed "
                "to go unavailable, the rollout never progresses",
                measured=f"maxSurge {surge}, maxUnavailable {unavailable} at {n} replicas",
                required="maxSurge 0 and maxUnavailable >= 1 (or type Recreate)",
                fix="set strategy.rollingUpdate: {maxSurge: 0, maxUnavailable: 1}",
            )
        ]
    return []


def progress_deadline(w: Workload, t: Targets) -> list[Finding]:
    if w.kind != "Deployment" or t.cold_start_p95_s is None:
        return []
    deadline = int((w.obj.get("spec") or {}).get("progressDeadlineSeconds") or 600)
    need = t.cold_start_p95_s.value * t.profile.probes.margin
    if deadline < need:
        return [
            finding(
                w,
                "progress-deadline",
                "warning",
                "spec.progressDeadlineSeconds",
                "one rollout step takes longer than the progress deadline: the rollout is marked "
                "failed (ProgressDeadlineExceeded) although it is only loading",
                measured=f"progressDeadlineSeconds {deadline}",
                required=f">= cold start p95 x margin = {need:g} s",
                fix=f"set progressDeadlineSeconds: {int(need) + 60}",
                basis=t.cold_start_p95_s.basis,
            )
        ]
    return []


def image_pinned(w: Workload, t: Targets) -> list[Finding]:
    out: list[Finding] = []
    for i, c in enumerate(w.containers):
        image = str(c.get("image") or "")
        name = image.rsplit("/", 1)[-1]
        if "@" in name:
            continue
        if ":" not in name or name.endswith(":latest"):
            out.append(
                finding(
                    w,
                    "image-unpinned",
                    "warning",
                    w.container_field(i, "image"),
                    f"image {image!r} has no fixed tag: pulled on every start (pull policy Always) "
                    "and replicas may run different builds",
                    measured=image,
                    required="a version tag or digest",
                    fix="pin the image to a version tag or @sha256 digest",
                )
            )
    return out


RULES = [gpu_surge, progress_deadline, image_pinned]
