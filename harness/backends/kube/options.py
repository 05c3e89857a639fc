"""What the kube backend takes from the profile and the command line (see `backend_options`).

Imports nothing of the Kubernetes client: options are built before any backend is.
"""

from __future__ import annotations

from typing import Any

from harness.errors import InputError
from harness.profile import Profile


def allowed_contexts(profile: Profile, allow_contexts: list[str]) -> list[str]:
    """The profile's allowed contexts, then those allowed on the command line (no duplicates, in
    order)."""
    return list(dict.fromkeys([*profile.kube.allowed_contexts, *allow_contexts]))


def options(
    profile: Profile, *, context: str | None, allow_contexts: list[str], runtime: str
) -> dict[str, Any]:
    """KubeBackend(workdir, **options): the context, the contexts allowed for it, and whether
    chaos is.

    `runtime` is ignored (pods run in the cluster's container runtime). The context itself is
    checked against the allowed ones when the backend is built (`safety.check_context`).
    """
    del runtime
    if not context:
        raise InputError(
            "the kube backend needs a context",
            field="--context",
            fix="give --context NAME (and allow it with --allow-context NAME or in the profile)",
        )
    out: dict[str, Any] = {
        "context": context,
        "allowed_contexts": allowed_contexts(profile, allow_contexts),
        "chaos_allowed": profile.kube.chaos_allowed,
    }
    if profile.kube.zone_outage is not None:
        out["zone_outage_mode"] = profile.kube.zone_outage
    return out
