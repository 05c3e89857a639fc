"""What the local backend takes from the profile and the command line (see `backend_options`)."""

from __future__ import annotations

from typing import Any

from harness.errors import InputError
from harness.profile import Profile


def options(
    profile: Profile, *, context: str | None, allow_contexts: list[str], runtime: str
) -> dict[str, Any]:
    """LocalBackend(workdir, **options): the profile's zones and nodes per zone, and the runtime.

    `allow_contexts` is ignored (there is no kube context to guard); a `context` is refused.
    """
    del allow_contexts
    if context:
        raise InputError(
            "--context applies to the kube backend",
            field="--context",
            fix="add --backend kube, or drop --context",
        )
    return {
        "zones": list(profile.zones.zones),
        "nodes_per_zone": profile.zones.nodes_per_zone,
        "runtime": runtime,
    }
