"""Run the service under uvicorn with Kubernetes-friendly start-up and shutdown.

- The socket is bound before the model loads (loading runs in a background thread), so probes
  answer during the load: /startup and /ready say 503 until the model is warm.
- SIGTERM starts a graceful drain: readiness fails at once, new work gets 503 while the socket
  stays open, in-flight requests and streams finish within `drain_timeout_s`; what is still
  running then is aborted (a stream ends with an SSE error event and `[DONE]`, a waiting or
  non-streaming request gets 503), then the process exits 0. A second SIGTERM/SIGINT exits at
  once.
"""

from __future__ import annotations

import logging
import threading
import time
from types import FrameType

import uvicorn

from reference_service.app import create_app
from reference_service.config import ServiceSettings
from reference_service.events import log_json
from reference_service.state import ServiceState

log = logging.getLogger("reference_service.server")


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM drains instead of closing the socket."""

    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self.state = state
        self._drain_thread: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Do not record the signal: uvicorn would re-raise it after shutdown (exit != 0).
        if self._drain_thread is not None:  # second signal: stop now
            self.should_exit = True
            self.force_exit = True
            return
        self.state.begin_drain()
        self._drain_thread = threading.Thread(target=self._drain, name="drain", daemon=True)
        self._drain_thread.start()

    def _drain(self) -> None:
        st = self.state
        timeout = st.settings.drain_timeout_s
        t0 = time.monotonic()
        waited_for = st.inflight + (st.engine.waiting + st.engine.running if st.engine else 0)
        log_json("drain_started", in_flight=waited_for, drain_timeout_s=timeout)
        while not st.idle() and time.monotonic() - t0 < timeout:
            time.sleep(0.02)
        clean = st.idle()
        aborted = 0
        if not clean and st.engine is not None:
            aborted = st.engine.abort_all("drain timeout reached")
        # Let the aborted requests' last events (and every last response) leave the loop.
        flush_until = time.monotonic() + 2.0
        while st.inflight and time.monotonic() < flush_until:
            time.sleep(0.02)
        time.sleep(0.05)
        log_json(
            "drain_finished",
            seconds=round(time.monotonic() - t0, 3),
            clean=clean,
            aborted=aborted,
        )
        self.should_exit = True


def run_server(settings: ServiceSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format='{"event":"log","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )
    state = ServiceState(settings)
    app = create_app(settings, state=state)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.drain_timeout_s) + 5),
        lifespan="on",
    )
    server = DrainingServer(config, state)
    if settings.probe_port is not None:
        from reference_service.probe_server import start_probe_server

        start_probe_server(state, settings.host, settings.probe_port)
    log_json(
        "server_starting",
        host=settings.host,
        port=settings.port,
        model_dir=str(settings.model_dir),
        debug_endpoints=settings.debug_endpoints,
    )
    server.run()
    log_json("server_stopped")


def main() -> None:
    run_server(ServiceSettings())


if __name__ == "__main__":
    main()
