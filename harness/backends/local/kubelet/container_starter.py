"""The runtime choice: a container runs as a host process (in its pod's cgroups) or in Docker.

Also what the kubelet would refuse before any start (CreateContainerConfigError) and what of
the pod spec it does not run, so both are said at deploy instead of failing every start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness.backends.base import BackendError
from harness.backends.local.cleanup import Ledger
from harness.backends.local.cluster.pod import LocalPod
from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.kubelet import cgroups, volumes
from harness.backends.local.kubelet.docker_args import docker_run_args
from harness.backends.local.kubelet.runtime import (
    ContainerHandle,
    DockerContainer,
    ProcessContainer,
    docker_available,
)
from harness.backends.local.podspec.entrypoint import (
    HostImage,
    default_entrypoint,
    host_image,
    process_argv,
)
from harness.backends.local.podspec.env_resolution import PodIdentity, expand, resolve_env
from harness.backends.local.podspec.pod_template import ContainerSpec, PodTemplate
from harness.errors import InputError, SetupError
from harness.manifests.bundle import ManifestBundle

RUNTIMES = ("process", "docker")


def limits_policy(runtime: str, enforce_limits: bool | None) -> tuple[bool, str]:
    """(limits enforced?, why or why not) for this runtime on this machine; SetupError when the
    asked-for enforcement is impossible here."""
    if runtime not in RUNTIMES:
        raise InputError(
            f"unknown runtime {runtime!r}", field="runtime", fix="use 'process' or 'docker'"
        )
    if runtime == "docker":
        ok, why = docker_available()
        if not ok:
            raise SetupError(f"docker runtime: {why} (start dockerd or use runtime='process')")
        return True, "docker --memory/--cpus"
    supported, reason = cgroups.support()
    if enforce_limits is None:
        return supported, reason
    if enforce_limits and not supported:
        raise SetupError(f"enforce_limits=True but {reason}")
    if not enforce_limits:
        return False, "enforce_limits=False: limits are monitored, not enforced"
    return True, reason


class ContainerStarter:
    def __init__(
        self,
        state: ClusterState,
        runtime: str,
        run: str,
        ledger: Ledger,
        workdir: Path,
        limits_enforced: bool,
    ) -> None:
        self.state = state
        self.runtime = runtime
        self.run = run
        self.ledger = ledger
        self.workdir = workdir
        self.limits_enforced = limits_enforced
        # (pod, container) whose docker-flag deviations were told
        self._flags_warned: set[tuple[str, str]] = set()

    @property
    def pod_cgroups(self) -> bool:
        """Whether pods get their own cgroups (read by the resource sampler between restarts
        too)."""
        return self.limits_enforced and self.runtime == "process"

    def check_runnable(self, template: PodTemplate, bundle: ManifestBundle) -> None:
        """Refuse at deploy what would fail every container start (CreateContainerConfigError)."""
        probe_identity = PodIdentity(
            "pod", self.state.namespace, "127.0.0.1", "node", template.labels
        )
        for c in [*template.init_containers, template.main]:
            if self.runtime == "process" and not c.command and default_entrypoint(c.image) is None:
                raise InputError(
                    "the process runtime needs the container's command (there is no image to read "
                    "its ENTRYPOINT from)",
                    file=bundle.source or None,
                    field=f"{c.field_path}.command",
                    fix="set command/args, or use the docker runtime",
                )
            resolve_env(c, probe_identity, bundle.objects, bundle.source)

    def pull_images(self, template: PodTemplate) -> list[str]:
        """The process runtime's image pull: provision the host analogue of each known image
        that needs an environment of its own (once; cached across runs). Returns what was done,
        for the event log; raises SetupError when an image cannot be provisioned here."""
        if self.runtime != "process":
            return []
        from harness.servers.venvs import EnvUnavailable

        done = []
        for c in [*template.init_containers, template.main]:
            try:
                known = host_image(c.image, provision=True)
            except EnvUnavailable as err:
                raise SetupError(f"cannot provision image {c.image} on this host: {err}") from err
            if known is not None and known.python is not None:
                done.append(
                    f"image {c.image}: {known.name} environment at {known.python.parent.parent}"
                )
        return done

    def warn_unreproduced(self, template: PodTemplate) -> None:
        """Say what of the pod spec this backend does not run, instead of dropping it silently."""
        extra = [c.name for c in template.containers[1:]]
        sidecars = template.sidecars
        if extra or sidecars:
            self.state.events.record(
                "Deployment",
                self.state.deployment.name,
                "RuntimeDeviation",
                f"only container {template.main.name} (after the init containers) runs locally; "
                "not run: "
                + ", ".join(
                    [f"containers {extra}"] * bool(extra)
                    + [f"sidecar initContainers {sidecars}"] * bool(sidecars)
                ),
                type_="Warning",
                source="gauntlet",
            )

    def start(self, pod: LocalPod, c: ContainerSpec) -> ContainerHandle:
        bundle = self.state.bundle
        assert bundle is not None
        ident = PodIdentity(
            pod.name, pod.namespace, pod.pod_ip or "127.0.0.1", pod.node_name or "", pod.labels
        )
        env = resolve_env(c, ident, bundle.objects, bundle.source)
        image = host_image(c.image) if self.runtime == "process" else None
        pod.env = {**(image or HostImage("host", [])).environment(os.environ), **env}
        command = [expand(x, env) for x in c.command]
        args = [expand(x, env) for x in c.args]
        log = self.workdir / "logs" / f"{pod.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write(
                (
                    f"--- container {c.name} start {time.time():.3f} restart {pod.restart_count}\n"
                ).encode()
            )
        if self.runtime == "docker":
            return self._docker(pod, c, command, args, env, log)
        cg = None
        if self.limits_enforced:
            cg = cgroups.PodCgroup(self.run, pod.name)
            cg.create(c.memory_limit, c.cpu_limit)
        with self.state.lock:
            if self.state.closed:
                raise BackendError("backend is shutting down")
            return ProcessContainer(
                process_argv(command, args, c.image), pod.env, c.working_dir, log, cg, self.ledger
            )

    def _docker(
        self,
        pod: LocalPod,
        c: ContainerSpec,
        command: list[str],
        args: list[str],
        env: dict[str, str],
        log: Path,
    ) -> ContainerHandle:
        run = docker_run_args(
            pod.template.spec, c, volumes.empty_dirs(pod.template.spec, self.run, pod.name)
        )
        if (pod.name, c.name) not in self._flags_warned:
            self._flags_warned.add((pod.name, c.name))
            for note in run.warnings:
                self.state.events.record(
                    "Pod",
                    pod.name,
                    "RuntimeDeviation",
                    note,
                    type_="Warning",
                    source="gauntlet-docker-runtime",
                )
        name = f"gauntlet-{self.run.split('@')[0]}-{pod.name}-{c.name}-{pod.container_id + 1}"
        return DockerContainer(
            name[:120],
            c.image,
            command,
            args,
            env,
            c.working_dir,
            run.flags,
            {"gauntlet.run": self.run, "gauntlet.pod": pod.name},
            self.ledger,
            log,
        )
