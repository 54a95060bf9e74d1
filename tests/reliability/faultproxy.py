"""A fault-injecting HTTP proxy between s3fs and the moto server (127.0.0.1 only).

For a chosen fraction of requests (seeded, so a run is reproducible) it injects one fault:

* ``500`` / ``503``: an S3-style XML error (``InternalError`` / ``SlowDown``), the request
  never reaches the server;
* ``reset``: the connection is reset (RST) before the request is forwarded;
* ``reset_after``: the request IS forwarded and applied, then the connection is reset: the
  client never learns that its write landed (the "lost response" case);
* ``stall``: the proxy waits ``stall_s`` seconds (bounded) before forwarding; with a client
  read timeout below ``stall_s`` the client times out and retries while the slow original
  still lands later.

Apart from the drawn faults, :meth:`FaultProxy.refuse` makes it answer every PUT that
carries a given header with a fixed error, as a server that does not implement a
conditional write does (``501 NotImplemented`` to ``If-Match``).

Every loop is bounded: handler sockets have timeouts, request bodies are read by length,
and the server shuts itself down after ``max_lifetime_s`` even if a test forgets to.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULT_KINDS = ("500", "503", "reset", "reset_after", "stall")

_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
)


class FaultProxy:
    """Start with ``with FaultProxy(upstream, rate=0.3) as proxy: proxy.url``.

    Args:
        upstream: ``http://127.0.0.1:PORT`` of the real S3 server.
        rate: fraction of requests that get a fault (0..1).
        kinds: the faults to draw from (uniformly).
        seed: seeds the fault draws.
        stall_s: how long a stall lasts (bounded).
        max_lifetime_s: the server stops itself after this long.
    """

    def __init__(self, upstream: str, *, rate: float = 0.25, kinds=FAULT_KINDS, seed: int = 0,
                 stall_s: float = 2.0, max_lifetime_s: float = 300.0) -> None:
        target = urlsplit(upstream)
        if target.hostname != "127.0.0.1":
            raise ValueError("the fault proxy only forwards to 127.0.0.1")
        self.upstream = (target.hostname, target.port)
        self.rate = rate
        self.kinds = tuple(kinds)
        self.stall_s = min(float(stall_s), 5.0)
        self.max_lifetime_s = max_lifetime_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.faults: Counter = Counter()
        self.refusals: dict[str, tuple[int, str, str]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())

    def start(self) -> None:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                 daemon=True, name="fault-proxy")
        watchdog = threading.Timer(self.max_lifetime_s, self.stop)
        watchdog.daemon = True
        serve.start()
        watchdog.start()
        self._threads = [serve]
        self._watchdog = watchdog

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None:
            watchdog.cancel()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self.rate = rate

    def refuse(self, header: str, *, status: int, code: str,
               message: str = "injected fault") -> None:
        """Answer every PUT carrying ``header`` with ``status``/``code`` (not forwarded)."""
        with self._lock:
            self.refusals[header.lower()] = (status, code, message)

    def refusal_for(self, command: str, headers) -> tuple[int, str, str] | None:
        if command != "PUT":
            return None
        with self._lock:
            for header, answer in self.refusals.items():
                if header in {k.lower() for k in headers.keys()}:
                    self.faults["refused"] += 1
                    return answer
        return None

    def draw(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self._random.random() >= self.rate:
                return None
            kind = self._random.choice(self.kinds)
            self.faults[kind] += 1
            return kind


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops talking does not hold a thread forever

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            for _ in range(1_000_000):  # bounded: a body has finitely many chunks
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _error(self, status: int, code: str, message: str = "injected fault") -> None:
        body = _ERROR_BODY.format(code=code, message=message).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("connection", "transfer-encoding", "keep-alive")}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            connection.close()

    def _handle(self) -> None:
        body = self._body()
        refusal = self.owner.refusal_for(self.command, self.headers)
        if refusal is not None:
            return self._error(*refusal)
        fault = self.owner.draw()
        if fault == "500":
            return self._error(500, "InternalError")
        if fault == "503":
            return self._error(503, "SlowDown")
        if fault == "reset":
            return self._reset()
        if fault == "stall":
            time.sleep(self.owner.stall_s)
        status, headers, data = self._forward(body)
        if fault == "reset_after":
            return self._reset()
        try:
            self.send_response(status)
            length = str(len(data))
            for key, value in headers:
                lowered = key.lower()
                if lowered == "content-length" and self.command == "HEAD":
                    length = value  # HEAD describes the object, it carries no body
                elif lowered not in ("connection", "transfer-encoding", "content-length",
                                     "keep-alive", "server", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:  # the client gave up (timed out during a stall)
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
