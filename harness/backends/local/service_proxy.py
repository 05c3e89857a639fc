"""The Service: one stable loopback address, each request routed to a Ready pod (round-robin).

An asyncio HTTP/1.1 reverse proxy in its own thread. Routing is per request (L7), so a pod
that stops being Ready stops getting *new* requests at once, like an EndpointSlice update;
requests already in flight finish. Connections to pods are kept alive and pooled. Responses
stream through (Content-Length, chunked or until close), so token streaming works.
No ready endpoint -> 503 with `x-gauntlet-proxy: no-ready-endpoints`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import defaultdict
from collections.abc import Callable

Endpoint = tuple[str, str, int]  # pod name, ip, port
_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"te",
    b"trailer",
}


class _Pool:
    def __init__(self) -> None:
        self.idle: dict[
            tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        ] = defaultdict(list)

    async def get(
        self, ip: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        conns = self.idle[(ip, port)]
        while conns:
            r, w = conns.pop()
            if not w.is_closing() and not r.at_eof():
                return r, w, True
            w.close()
        r, w = await asyncio.open_connection(ip, port)
        return r, w, False

    def put(self, ip: str, port: int, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if len(self.idle[(ip, port)]) < 64:
            self.idle[(ip, port)].append((r, w))
        else:
            w.close()

    def close_all(self) -> None:
        for conns in self.idle.values():
            for _, w in conns:
                w.close()
        self.idle.clear()


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None


def _headers(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    hdrs = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(b":")
            hdrs.append((k.strip().lower(), v.strip()))
    return lines[0], hdrs


async def _copy_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    hdrs: list[tuple[bytes, bytes]],
    until_close: bool,
) -> None:
    """Forward a message body framed by Content-Length, chunked encoding, or connection close."""
    h = dict(hdrs)
    if h.get(b"transfer-encoding", b"").lower().endswith(b"chunked"):
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0], 16)
            data = await reader.readexactly(size + 2) if size else b""
            writer.write(line + data)
            if size == 0:
                while True:  # trailers until an empty line
                    t = await reader.readuntil(b"\r\n")
                    writer.write(t)
                    if t == b"\r\n":
                        break
                break
            await writer.drain()
    elif b"content-length" in h:
        left = int(h[b"content-length"])
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                raise ConnectionError("short body")
            writer.write(data)
            left -= len(data)
    elif until_close:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    await writer.drain()


class ServiceProxy:
    def __init__(
        self, endpoints: Callable[[], list[Endpoint]], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._endpoints = endpoints
        self.host = host
        self.port = port
        self._rr = itertools.count()
        self.requests_by_pod: dict[str, int] = defaultdict(int)
        self.no_endpoint_503 = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._pool = _Pool()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        ready = threading.Event()
        err: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._client, self.host, self.port, backlog=1024, reuse_address=True
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:
                err.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._pool.close_all()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="gauntlet-service-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if err:
            raise err[0]

    def stop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(5)

    def pick(self) -> Endpoint | None:
        eps = self._endpoints()
        if not eps:
            return None
        return eps[next(self._rr) % len(eps)]

    async def _client(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await _read_head(creader)
                if head is None:
                    return
                keep = await self._one(head, creader, cwriter)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return
        finally:
            cwriter.close()

    async def _one(
        self, head: bytes, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> bool:
        start, hdrs = _headers(head)
        client_close = dict(hdrs).get(b"connection", b"").lower() == b"close" or start.endswith(
            b"HTTP/1.0"
        )
        body = bytearray()
        h = dict(hdrs)
        if b"content-length" in h or h.get(b"transfer-encoding", b"").lower().endswith(b"chunked"):
            sink = _Buffer(body)
            await _copy_body(creader, sink, hdrs, until_close=False)  # type: ignore[arg-type]
            if b"transfer-encoding" in h:  # re-frame as Content-Length towards the pod
                body = bytearray(_dechunk(bytes(body)))
        out_hdrs = [(k, v) for k, v in hdrs if k not in _HOP and k != b"content-length"]
        if body or b"content-length" in h or b"transfer-encoding" in h:
            out_hdrs.append((b"content-length", str(len(body)).encode()))
        for attempt in range(3):
            ep = self.pick()
            if ep is None:
                self.no_endpoint_503 += 1
                msg = b"no ready endpoints for the service\n"
                cwriter.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nx-gauntlet-proxy: no-ready-endpoints\r\n"
                    b"content-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(msg), msg)
                )
                await cwriter.drain()
                return not client_close
            name, ip, port = ep
            try:
                r, w, reused = await self._pool.get(ip, port)
            except OSError:
                if attempt < 2:
                    # endpoint vanished between pick and dial: kube-proxy would also pick anew
                    continue
                break
            req = (
                start
                + b"\r\n"
                + b"".join(k + b": " + v + b"\r\n" for k, v in out_hdrs)
                + b"\r\n"
                + bytes(body)
            )
            try:
                w.write(req)
                await w.drain()
                rhead = await r.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                w.close()
                if reused:
                    continue  # a pooled connection the pod had closed: retry transparently
                break
            self.requests_by_pod[name] += 1
            status, rh = _headers(rhead)
            rdict = dict(rh)
            server_close = rdict.get(b"connection", b"").lower() == b"close"
            framed = b"content-length" in rdict or rdict.get(
                b"transfer-encoding", b""
            ).lower().endswith(b"chunked")
            no_body = (
                start.startswith(b"HEAD ")
                or status.split(b" ")[1][:1] == b"1"
                or status.split(b" ")[1] in (b"204", b"304")
            )
            keep = not client_close
            resp_hdrs = [(k, v) for k, v in rh if k not in (b"connection", b"keep-alive")]
            resp_hdrs.append((b"x-gauntlet-pod", name.encode()))
            if not framed and not no_body:
                keep = False
            resp_hdrs.append((b"connection", b"keep-alive" if keep else b"close"))
            cwriter.write(
                status + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in resp_hdrs) + b"\r\n"
            )
            try:
                if not no_body:
                    await _copy_body(r, cwriter, rh, until_close=not framed)
                else:
                    await cwriter.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                w.close()
                return False
            if server_close or (not framed and not no_body):
                w.close()
            else:
                self._pool.put(ip, port, r, w)
            return keep
        cwriter.write(
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n"
            b"x-gauntlet-proxy: upstream-failed\r\n\r\n"
        )
        await cwriter.drain()
        return False


class _Buffer:
    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    def write(self, data: bytes) -> None:
        self.buf += data

    async def drain(self) -> None:
        return None


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while True:
        j = data.index(b"\r\n", i)
        size = int(data[i:j].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        out += data[j + 2 : j + 2 + size]
        i = j + 2 + size + 2
