"""A small stand-in replica.

/startup /ready /healthz /metrics, load delay, memory allocation, SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
LOAD_S = float(os.environ.get("LOAD_S", "0"))
ALLOC_MB = int(os.environ.get("ALLOC_MB", "0"))
WORK_MS = float(os.environ.get("WORK_MS", "0"))
state: dict[str, Any] = {"loaded": False, "running": 0}  # + "blob": the allocation, kept
lock = threading.Lock()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = (
        True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    )

    def log_message(self, *a: object) -> None:
        pass

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, b"ok")
        elif self.path in ("/startup", "/ready"):
            self._send(
                200 if state["loaded"] else 503, b"loaded" if state["loaded"] else b"loading"
            )
        elif self.path == "/metrics":
            self._send(
                200,
                "# TYPE vllm:num_requests_running gauge\n"
                f"vllm:num_requests_running {state['running']}\n"
                f"vllm:num_requests_waiting 0\n".encode(),
            )
        else:
            with lock:
                state["running"] += 1
            try:
                end = time.perf_counter() + WORK_MS / 1000
                while time.perf_counter() < end:
                    pass
                self._send(200, b"hello from " + os.environ.get("POD_NAME", "?").encode())
            finally:
                with lock:
                    state["running"] -= 1


def main() -> None:
    server = ThreadingHTTPServer((HOST, PORT), H)

    def on_sigterm(*_: object) -> None:
        server.server_close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(LOAD_S)
    if ALLOC_MB:
        blob = bytearray(ALLOC_MB * 1024 * 1024)
        for i in range(0, len(blob), 4096):
            blob[i] = 1
        state["blob"] = blob
    state["loaded"] = True
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
