"""One probe attempt (httpGet, tcpSocket, exec) against a replica, as the kubelet prober does it."""

from __future__ import annotations

import http.client
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from harness.backends.local.spec import ProbeSpec


@dataclass
class ProbeOutcome:
    success: bool
    message: str = ""


def run_probe(probe: ProbeSpec, pod_ip: str, exec_argv: Callable[[list[str]], list[str]],
              env: dict[str, str] | None = None) -> ProbeOutcome:
    try:
        if probe.handler == "httpGet":
            return _http(probe, probe.host or pod_ip)
        if probe.handler == "tcpSocket":
            with socket.create_connection((probe.host or pod_ip, probe.port or 0), timeout=probe.timeout_s):
                return ProbeOutcome(True)
        if probe.handler == "exec":
            out = subprocess.run(exec_argv(probe.command), capture_output=True, timeout=probe.timeout_s, env=env)
            if out.returncode == 0:
                return ProbeOutcome(True)
            return ProbeOutcome(False, f"command exited {out.returncode}: {out.stdout[-200:].decode(errors='replace')}")
        return ProbeOutcome(False, f"{probe.handler} probes are not supported by the local backend")
    except subprocess.TimeoutExpired:
        return ProbeOutcome(False, f"command timed out after {probe.timeout_s:g}s")
    except TimeoutError:
        return ProbeOutcome(False, f"context deadline exceeded (timeout {probe.timeout_s:g}s)")
    except OSError as err:
        return ProbeOutcome(False, f"dial tcp {pod_ip}:{probe.port}: {err.strerror or err}")


def _http(probe: ProbeSpec, host: str) -> ProbeOutcome:
    cls = http.client.HTTPSConnection if probe.scheme.upper() == "HTTPS" else http.client.HTTPConnection
    conn = cls(host, probe.port, timeout=probe.timeout_s)
    try:
        headers = {"User-Agent": "kube-probe/1.33", "Accept": "*/*", "Connection": "close", **probe.headers}
        conn.request("GET", probe.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(10 * 1024)
        if 200 <= resp.status < 400:
            return ProbeOutcome(True)
        return ProbeOutcome(False, f"HTTP probe failed with statuscode: {resp.status} {body[:120].decode(errors='replace')}".strip())
    except TimeoutError:
        return ProbeOutcome(False, f'Get "http://{host}:{probe.port}{probe.path}": context deadline exceeded '
                                   f"(Client.Timeout exceeded while awaiting headers)")
    finally:
        conn.close()
