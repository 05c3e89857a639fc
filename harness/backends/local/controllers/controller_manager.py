"""The controller manager's loop: on every change (or every 0.5 s) the controllers run in order.

Order matters and is kube's: finished pods leave the API, the Deployment controller sizes the
ReplicaSets, the ReplicaSet controller creates/deletes pods, the scheduler binds the new ones,
the endpoints follow, and the Deployment status is computed from the result.
"""

from __future__ import annotations

import time

from harness.backends.local.cluster.state import ClusterState
from harness.backends.local.controllers.deployment_controller import DeploymentController
from harness.backends.local.controllers.endpoints_controller import EndpointsController
from harness.backends.local.controllers.replicaset_controller import ReplicaSetController
from harness.backends.local.controllers.scheduler_controller import SchedulerController
from harness.backends.local.kubelet.pod_workers import PodWorkers

RESYNC_S = 0.5


class ControllerManager:
    def __init__(
        self,
        state: ClusterState,
        pod_workers: PodWorkers,
        deployments: DeploymentController,
        replicasets: ReplicaSetController,
        scheduler: SchedulerController,
        endpoints: EndpointsController,
    ) -> None:
        self.state = state
        self.pod_workers = pod_workers
        self.deployments = deployments
        self.replicasets = replicasets
        self.scheduler = scheduler
        self.endpoints = endpoints

    def run(self) -> None:
        s = self.state
        while not s.stop.is_set():
            s.wake.wait(RESYNC_S)
            s.wake.clear()
            if s.stop.is_set():
                return
            try:
                self.reconcile()
            except Exception as err:  # keep the controllers alive; surface the problem as an event
                s.events.record(
                    "Deployment",
                    s.deployment.name,
                    "ReconcileError",
                    repr(err),
                    type_="Warning",
                    source="gauntlet",
                )

    def reconcile(self) -> None:
        with self.state.lock:  # one consistent view from garbage collection to the pod diff
            self.pod_workers.collect_finished()
            self.deployments.sync(time.time())
            creates, deletes = self.replicasets.diff()
        self.replicasets.apply(creates, deletes)
        self.scheduler.schedule_pending()
        self.endpoints.sync()
        with self.state.lock:
            self.deployments.sync_status(time.time())
