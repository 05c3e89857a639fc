"""The probe endpoints on a port and thread of their own (GAUNTLET_PROBE_PORT).

Under a retry storm the API's event loop queues thousands of requests; a kubelet probe queued
behind them times out and the kubelet kills a healthy, busy container (found by the
oom-headroom scenario: liveness kills under overload). Here the probes answer from the shared
state without touching that queue; liveness still reflects the inference thread's heartbeat.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reference_service.state import ServiceState

Answer = Callable[[], tuple[int, dict[str, Any]]]


def start_probe_server(state: ServiceState, host: str, port: int) -> ThreadingHTTPServer:
    routes: dict[str, Answer] = {
        "/startup": state.startup_status,
        "/ready": state.ready_status,
        "/healthz": state.liveness_status,
        "/health": state.health_status,
        "/ping": state.health_status,
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            answer = routes.get(self.path.split("?", 1)[0])
            code, body = answer() if answer else (404, {"error": f"no probe at {self.path}"})
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # probes are not news
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="probe-server", daemon=True).start()
    return server
