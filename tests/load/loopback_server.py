"""A tiny threaded HTTP/1.1 server for load tests, run as a subprocess: prints its port.

Behaviour by flags: fixed delay per request, a freeze window (every request arriving in
[freeze_at, freeze_at + freeze_s) after the first request is held until the window ends), and a
status cycle (e.g. 200,429,503,200) applied per request in arrival order. With `--sse N`, a 200
is an OpenAI-style stream: N content chunks `--gap-ms` apart after the delay, a usage chunk
(`--usage-tokens`, default N), then `data: [DONE]`; `--sse-end error` ends with an SSE error
event instead, `--sse-end cut` closes the stream without `[DONE]`. `--stall-every K --stall-ms
S`: every Kth stream (in arrival order) waits S ms instead of the gap before its middle chunk.
`--log FILE`: one JSON line per stream, the epoch times its request arrived and each chunk was
written (the truth a client's measurement is compared with).
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--freeze-at", type=float, default=-1.0)
    ap.add_argument("--freeze-s", type=float, default=0.0)
    ap.add_argument("--statuses", default="200")
    ap.add_argument("--sse", type=int, default=0)
    ap.add_argument("--gap-ms", type=float, default=0.0)
    ap.add_argument("--usage-tokens", type=int, default=None)
    ap.add_argument("--sse-end", choices=["done", "error", "cut"], default="done")
    ap.add_argument("--sse-from-body", action="store_true", help="N = the body's max_tokens")
    ap.add_argument("--stall-every", type=int, default=0)
    ap.add_argument("--stall-ms", type=float, default=0.0)
    ap.add_argument("--log", default=None)
    args = ap.parse_args()
    cycle = itertools.cycle(int(s) for s in args.statuses.split(","))
    lock = threading.Lock()
    first: list[float] = []
    streams = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def _handle(self) -> None:
            self.received = time.time()
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            self.chunks_to_send = args.sse
            if args.sse_from_body:
                import json

                self.chunks_to_send = int(json.loads(raw)["max_tokens"])
            now = time.monotonic()
            with lock:
                if not first:
                    first.append(now)
                status = next(cycle)
            if args.freeze_at >= 0:
                f0 = first[0] + args.freeze_at
                f1 = f0 + args.freeze_s
                if f0 <= now < f1:
                    time.sleep(f1 - now)
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000)
            if (args.sse or args.sse_from_body) and status == 200:
                self._stream()
                return
            body = b'{"ok":true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()

            written: list[float] = []

            def event(payload: str) -> None:
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()
                written.append(time.time())

            stalled = bool(args.stall_every) and next(streams) % args.stall_every == 0
            for i in range(self.chunks_to_send):
                if stalled and i == self.chunks_to_send // 2:
                    time.sleep(args.stall_ms / 1000)
                elif i and args.gap_ms:
                    time.sleep(args.gap_ms / 1000)
                last = i == self.chunks_to_send - 1
                reason = '"length"' if last and args.sse_end == "done" else "null"
                event(f'{{"choices":[{{"index":0,"text":"t","finish_reason":{reason}}}]}}')
            if args.sse_end == "error":
                event('{"error":{"message":"boom","type":"server_unavailable","code":503}}')
            elif args.sse_end == "done":
                tokens = self.chunks_to_send if args.usage_tokens is None else args.usage_tokens
                event(f'{{"choices":[],"usage":{{"completion_tokens":{tokens}}}}}')
            if args.sse_end != "cut":
                event("[DONE]")
            self.close_connection = True
            if args.log:
                import json

                line = json.dumps(
                    {"received": self.received, "chunks": written[: self.chunks_to_send]}
                )
                with lock, open(args.log, "a") as f:
                    f.write(line + "\n")

        do_GET = _handle
        do_POST = _handle

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
