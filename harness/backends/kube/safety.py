"""Guard rails for touching a real cluster: an explicit context allow-list and a chaos switch.
(The clean-up that runs on exit, Ctrl-C and SIGTERM is `harness.backends.signal_cleanup`.)"""

from __future__ import annotations

from harness.backends.base import BackendError
from harness.errors import InputError

CHAOS_ACTIONS = ("zone_outage", "drain_zone", "delete_pod", "hang_pod", "rollout_restart")


class ContextNotAllowedError(InputError):
    """The kube context is not on the allow-list (profile `kube.allowed_contexts` /
    --allow-context)."""


class ChaosNotAllowedError(BackendError, InputError):
    """A fault was asked for on a context where the profile does not allow chaos."""

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None) -> None:
        InputError.__init__(self, message, field=field, fix=fix)


def check_context(context: str, allowed_contexts: list[str]) -> None:
    if not context:
        raise ContextNotAllowedError(
            "no kube context given",
            field="--context",
            fix="pass --context CTX (a context of your kubeconfig, or 'in-cluster')",
        )
    if context not in allowed_contexts:
        allowed = ", ".join(allowed_contexts) or "none"
        raise ContextNotAllowedError(
            f"refusing kube context {context!r}: it is not explicitly allowed (allowed: {allowed})",
            field="kube.allowed_contexts",
            fix=(
                f"add {context!r} to the profile's kube.allowed_contexts "
                f"or pass --allow-context {context}"
            ),
        )


def check_chaos(action: str, context: str, chaos_allowed: bool) -> None:
    if not chaos_allowed:
        raise ChaosNotAllowedError(
            f"refusing {action} on kube context {context!r}: chaos is not allowed there",
            field="kube.chaos_allowed",
            fix="set kube.chaos_allowed: true in the profile for a cluster you may disrupt",
        )
