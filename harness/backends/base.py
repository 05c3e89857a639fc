"""The one small interface every backend implements; scenarios never know which one they drive."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from pydantic import BaseModel

from harness.backends.observe import (
    Deployment,
    DeploymentStatus,
    Event,
    FaultRecord,
    HPAStatusSample,
    Node,
    Pod,
    ResourceSample,
)
from harness.manifests.bundle import ManifestBundle

if TYPE_CHECKING:
    from harness.load.result import LoadPath
    from harness.load.runner import LoadHandle
    from harness.load.spec import LoadSpec

#: The pod-template annotation `kubectl rollout restart` sets; a new value is a new pod template.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class BackendError(RuntimeError):
    """The backend could not do what was asked (deploy failed, rollout timed out...)."""


def restarted_at_stamp(t: float | None = None) -> str:
    """RFC3339 UTC time for the restartedAt annotation (microseconds: two restarts never
    collide)."""
    when = datetime.fromtimestamp(time.time() if t is None else t, tz=UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class RolloutWatch:
    """The extremes seen while a rollout runs: pods above spec (surge) and available below it."""

    max_surge: int = 0
    max_unavailable: int = 0
    samples: int = 0

    def observe(self, spec_replicas: int, active: int, available: int) -> None:
        self.samples += 1
        self.max_surge = max(self.max_surge, active - spec_replicas)
        self.max_unavailable = max(self.max_unavailable, spec_replicas - available)

    def summary(self) -> str:
        return f"observed max surge {self.max_surge}, max unavailable {self.max_unavailable}"


class Backend(abc.ABC):
    """What every backend does. Abilities only some have are the small interfaces below
    (`RolloutRestarter`, `ServiceLoadRunner`, `ClusterProvisioner`): a caller checks
    `isinstance(backend, RolloutRestarter)` (or `issubclass` on the class)."""

    name: str = "abstract"
    #: True when memory limits are enforced by the kernel (an over-limit replica is OOM-killed).
    limits_enforced: bool = False
    #: Why limits are (or are not) enforced, for the report ("" where nothing needs saying).
    limits_reason: str = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    # lifecycle -----------------------------------------------------------------------------
    @abc.abstractmethod
    def deploy(self, bundle: ManifestBundle) -> None:
        """Apply rendered manifests (Deployment, Service, HPA, PDB) and start creating pods."""

    @abc.abstractmethod
    def wait_ready(self, replicas: int | None = None, timeout_s: float = 300.0) -> DeploymentStatus:
        """Block until `replicas` (default: spec.replicas) pods are Ready; BackendError on
        timeout."""

    @abc.abstractmethod
    def teardown(self) -> None:
        """Remove everything this backend created. Idempotent; also called on interrupt."""

    # traffic -------------------------------------------------------------------------------
    @abc.abstractmethod
    def service_url(self) -> str:
        """A loopback URL that reaches only Ready pods, like a Service with EndpointSlices."""

    # observation ---------------------------------------------------------------------------
    @abc.abstractmethod
    def pods(self, include_deleted: bool = False) -> list[Pod]:
        """The Deployment's pods now; with `include_deleted`, also those seen deleted since deploy
        (their last observed state, `deletionTimestamp` set), for the evidence files."""

    @abc.abstractmethod
    def nodes(self) -> list[Node]: ...

    @abc.abstractmethod
    def events(self, since: float | None = None) -> list[Event]: ...

    @abc.abstractmethod
    def deployment(self) -> Deployment:
        """The Deployment under test: metadata, spec.replicas and status."""

    def deployment_status(self) -> DeploymentStatus:
        return self.deployment().status

    @abc.abstractmethod
    def hpa_history(self) -> list[HPAStatusSample]: ...

    @abc.abstractmethod
    def resource_samples(self, since: float | None = None) -> list[ResourceSample]: ...

    def pod_log(self, pod: str) -> str:
        """The pod's main container log (every start of it), '' where the backend has none."""
        return ""

    @abc.abstractmethod
    def pod_url(self, pod: str) -> str:
        """A loopback URL that reaches one pod directly (port-forward on kube)."""

    # actions -------------------------------------------------------------------------------
    @abc.abstractmethod
    def scale(self, replicas: int) -> None:
        """Set the Deployment's spec.replicas (what the HPA would do)."""

    @abc.abstractmethod
    def delete_pod(self, pod: str, grace_period_s: float | None = None) -> FaultRecord: ...

    @abc.abstractmethod
    def zone_outage(self, zone: str) -> FaultRecord:
        """Lose a whole zone: its pods die, its nodes become unreachable."""

    @abc.abstractmethod
    def restore_zone(self, zone: str) -> FaultRecord: ...

    @abc.abstractmethod
    def drain_zone(self, zone: str, timeout_s: float = 60.0) -> FaultRecord:
        """Cordon + evict through the PDB (429 when the budget blocks)."""

    @abc.abstractmethod
    def hang_pod(self, pod: str) -> FaultRecord:
        """Make a replica stop responding (process frozen) without exiting."""

    # helpers -------------------------------------------------------------------------------
    def wait_until(
        self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.2, what: str = ""
    ) -> float:
        """Poll `predicate` until true; returns the time it became true. BackendError on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            if predicate():
                return time.time()
            if time.monotonic() > deadline:
                raise BackendError(
                    f"timed out after {timeout_s:.0f}s waiting for {what or 'condition'}"
                )
            time.sleep(poll_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()


# optional abilities ----------------------------------------------------------------------------
# Each is its own small interface, like e2e-framework's E2EClusterProviderWithLifeCycle beside
# E2EClusterProvider. They are ABC mixins, not runtime-checkable Protocols: a backend claims an
# ability by naming it among its bases (mypy then checks the signature where the class is
# defined), and `isinstance` answers exactly that claim -- a structural check would say yes to
# anything with a method of that name, a MagicMock included.


class RolloutRestarter(abc.ABC):
    """A backend that can change the Deployment's pod template (`kubectl rollout restart`)."""

    @abc.abstractmethod
    def rollout_restart(self, timeout_s: float = 300.0) -> FaultRecord:
        """`kubectl rollout restart` of the Deployment, then wait for the rollout.

        Sets the pod template annotation `kubectl.kubernetes.io/restartedAt` to now (RFC3339),
        which makes a new pod-template-hash: the Deployment controller replaces every pod
        following spec.strategy (RollingUpdate maxSurge/maxUnavailable, or Recreate). Waits
        until the rollout is complete -- spec.replicas pods of the new template, all available,
        no old replica left -- or `timeout_s`. Returns a FaultRecord of kind
        `FaultKind.ROLLOUT_RESTART`: `landed` is True only when the rollout completed in time;
        `affected` names the replaced pods where the backend knows them; `detail` gives the
        duration and the surge/unavailability actually observed (or what was still missing).
        Never raises on a slow rollout.
        """


class MetricsGapReporter(abc.ABC):
    """A backend whose resource samples come from an API that can be away (kube's metrics.k8s.io
    answers 503 for its first minute): it says when, so that no sample is not read as no use."""

    @abc.abstractmethod
    def metrics_gaps(self, since: float | None = None) -> Sequence[BaseModel]:
        """Spans without samples: `first_failure`, `last_failure`, `failures`, `statuses`,
        `message`, `recovered_at` (None: still away)."""


class ServiceLoadRunner(abc.ABC):
    """A backend whose `service_url()` does not reach the Service as its clients do (kube: a
    `kubectl port-forward svc/...` pins one pod), so it runs load from inside the cluster,
    against the Service's own address, through the cluster's Service routing (kube-proxy)."""

    @abc.abstractmethod
    def service_load_url(self) -> str:
        """The Service's address as seen from inside the cluster (its DNS name and port); the
        only target `start_service_load` accepts."""

    @abc.abstractmethod
    def load_path_of(self, url: str) -> LoadPath:
        """How a load aimed at `url` reaches the pods (`harness.load.result.LOAD_PATHS`):
        `service` for `service_load_url()`, `pod` or `service-port-forward` for the backend's
        port-forwards, `direct` for anything else. No side effects (starts no forward)."""

    @abc.abstractmethod
    def start_service_load(self, spec: LoadSpec, out_dir: Path) -> LoadHandle:
        """Start the spec from inside the cluster; the handle's `wait()` brings the result back
        into `out_dir` (load.json, records.npy) as a local run writes them, or raises: a failed
        or evicted generator is an error, never a result."""


class ClusterProvisioner(abc.ABC):
    """A backend that creates its own cluster when it is built (kind): minutes, not a cheap
    check. Its prerequisites can be checked without building it."""

    @classmethod
    @abc.abstractmethod
    def check_prerequisites(cls) -> None:
        """SetupError in seconds, naming everything missing to create the cluster and how to get
        it."""
