"""The endpoints controller: only serving pods, on the Service's resolved targetPort."""

from __future__ import annotations

import time

from cluster_fakes import add_pod, cluster

from harness.backends.local.controllers.endpoints_controller import EndpointsController


def test_only_ready_non_terminating_pods_with_an_ip_are_endpoints() -> None:
    s = cluster(3)
    ctl = EndpointsController(s)
    ctl.target_port = 8000
    add_pod(s, "ready", ready=True, ip="127.0.0.2")
    add_pod(s, "unready", ip="127.0.0.3")
    add_pod(s, "terminating", ready=True, ip="127.0.0.4").deletion = time.time()
    ctl.sync()
    assert s.endpoints == [("ready", "127.0.0.2", 8000)]


def test_target_port_by_name_by_number_or_the_first_container_port() -> None:
    s = cluster(1)
    ctl = EndpointsController(s)
    c = s.deployment.template.main  # ports: http -> 8000
    assert ctl.resolve_service({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}, c) == 80
    assert ctl.target_port == 8000
    assert ctl.resolve_service({"spec": {"ports": [{"port": 80, "targetPort": 9000}]}}, c) == 80
    assert ctl.target_port == 9000
    assert (
        ctl.resolve_service({"spec": {"ports": [{"port": 81}]}}, c) == 81 and ctl.target_port == 81
    )
    assert ctl.resolve_service(None, c) == 0 and ctl.target_port == 8000
