"""The listener of `watch --listen`: registry push notifications over plain HTTP.

It is built to survive the clients it cannot choose (see docs/registries.md#webhooks):
- at most `max_connections` connections at once; when all are taken, a new one replaces the
  connection that has waited longest for its request, so idle clients cannot lock a registry out
  (when all are being answered, the new one waits up to a second, then is closed);
- each request, headers and body, must arrive within `request_timeout` (a keep-alive connection
  that sends nothing is closed after the same time), so no handler thread waits on a client;
- every answer leaves the connection in step: the declared body is read (or drained) before a
  401/404, and a body that cannot be framed (no or bad Content-Length, over 1 MiB) gets its answer
  and the connection is closed, so a body is never read as the next request;
- running out of file descriptors when accepting logs one ERROR line and the listener accepts again
  when descriptors are free: it never ends the server or the watch.

The payloads themselves are parsed in payloads.py. GET requests (metrics, health, the status page) are
answered by the `pages` given (pages.py); a server without `on_event` (`--metrics-listen`) takes no webhooks.
"""

from __future__ import annotations

import errno
import hmac
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs

from acrtask.watch.events import PushEvent
from acrtask.watch.payloads import UnknownPayload, parse

log = logging.getLogger("acrtask.watch.webhook")

MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 10.0  # seconds for one request's headers and body, and for an idle keep-alive
LINGER = 2.0  # seconds to drain what a client still sends after an answer that closes the connection
_CHUNK = 64 * 1024
_LENGTH = re.compile(r"[0-9]{1,10}")
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

OnEvents = Callable[[list[PushEvent]], None]
OnResult = Callable[[str, str], None]  # (vendor, result) of each webhook request, for the metrics


class Pages(Protocol):
    def get(self, path: str, query: str, headers: Any) -> Any:
        """A pages.Page: status, content_type, body, headers."""


def token_ok(expected: str, authorization: str | None, query: str) -> bool:
    """`Authorization: Bearer <token>` or `?token=<token>`, compared in constant time."""
    offered = ""
    if authorization and authorization.lower().startswith("bearer "):
        offered = authorization[7:].strip()
    else:
        offered = (parse_qs(query).get("token") or [""])[0]
    return hmac.compare_digest(offered.encode(), expected.encode())


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # each recv and send; the deadline: all

    def handle_one_request(self) -> None:
        self.server.await_request(self.connection, self.server.request_timeout)
        super().handle_one_request()

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        # The raw target: http.server's self.path has already turned `//` into `/`.
        path, _, query = self.requestline.split()[1].partition("?")
        length = self._body_length()
        if length is None:
            return self.server.result("unknown", "bad_request")
        on_event = self.server.on_event
        if path != "/" or on_event is None:
            self.server.result("unknown", "not_found")
            return self._discard_then_reply(length, 404, "not found: POST to / only" if on_event else
                                            "not found: this listener takes no webhooks")
        if not token_ok(self.server.token, self.headers.get("Authorization"), query):
            self.server.result("unknown", "unauthorized")
            return self._discard_then_reply(length, 401, "bad or missing token")
        body = self._read(length)
        if body is None:
            return self.server.result("unknown", "incomplete")
        self.server.handling(self.connection)
        try:
            events = parse(body)
        except UnknownPayload as exc:
            self.server.result("unknown", "bad_payload")
            return self._reply(400, f"unknown payload: {exc}")
        if events:
            on_event(events)  # one call per body: the loop logs one line for it
        self.server.result(events[0].source if events else "unknown", "accepted" if events else "ignored")
        self._reply(202 if events else 200, f"{len(events)} push event(s)")

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        path, _, query = self.requestline.split()[1].partition("?")
        framed = self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding")
        length = self._body_length() if framed else 0
        if length is None:
            return
        if length:  # a GET with a body: read past it, so the connection stays in step
            return self._discard_then_reply(length, 400, "a GET takes no body")
        pages = self.server.pages
        if pages is None:
            return self._reply(404, "not found: POST webhooks to /")
        self.server.handling(self.connection)
        page = pages.get(path, query, self.headers)
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        for name, value in page.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(page.body)

    def _body_length(self) -> int | None:
        """The declared body length; None when the request was answered and the connection closes."""
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if self.headers.get("Transfer-Encoding") is not None:
            self._reply(411, "Content-Length required (chunked bodies are not accepted)", close=True)
        elif not lengths:
            self._reply(411, "Content-Length required", close=True)
        elif len(lengths) > 1 or not _LENGTH.fullmatch(next(iter(lengths))):
            self._reply(400, "bad Content-Length", close=True)
        elif int(next(iter(lengths))) > MAX_BODY:
            self._reply(413, "body over 1 MiB", close=True)
        else:
            return int(next(iter(lengths)))
        return None

    def _read(self, length: int) -> bytes | None:
        """The body, or None when the client stopped sending (the connection is then dropped)."""
        try:
            body = self.rfile.read(length)
        except OSError:  # the socket's timeout, or the deadline shut it down
            body = b""
        if len(body) < length:
            log.debug("webhook client sent %d of %d bytes: connection dropped", len(body), length)
            self.close_connection = True
            return None
        return body

    def _discard_then_reply(self, length: int, status: int, message: str) -> None:
        """Read the body without keeping it, so the connection stays in step, then answer."""
        left = length
        while left:
            try:
                chunk = self.rfile.read(min(left, _CHUNK))
            except OSError:
                chunk = b""
            if not chunk:
                self.close_connection = True
                return
            left -= len(chunk)
        self._reply(status, message)

    def _reply(self, status: int, message: str, close: bool = False) -> None:
        payload = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")  # http.server then ends the connection
        self.end_headers()
        self.wfile.write(payload)
        if close:
            self._linger()

    def _linger(self) -> None:
        """Drain what the client still sends, for a short while: closing a socket with unread data
        resets the connection, and the client may lose the answer it was about to read."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            return
        self.server.await_request(self.connection, min(LINGER, self.server.request_timeout))
        budget = MAX_BODY + _CHUNK
        while budget > 0:
            try:
                chunk = self.connection.recv(_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            budget -= len(chunk)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server signature
        # The query string may carry the token: log the path only.
        log.debug("webhook %s %s", self.command, (self.path or "").partition("?")[0])


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog (socketserver's default is 5)

    def __init__(self, host: str, port: int, token: str, on_event: OnEvents | None, *,
                 max_connections: int = MAX_CONNECTIONS, request_timeout: float = REQUEST_TIMEOUT,
                 accept_pause: float = 0.2, pages: Pages | None = None, on_result: OnResult | None = None) -> None:
        self.token = token
        self.on_event = on_event
        self.pages = pages
        self.on_result = on_result
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.accept_pause = accept_pause
        # Each open connection -> when it must have sent its request (None: being answered).
        self._deadlines: dict[socket.socket, float | None] = {}
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when a connection is closed
        self._out_of_descriptors = False
        if ":" in host:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="webhook",
                                  daemon=True)
        thread.start()
        return thread

    def result(self, vendor: str, result: str) -> None:
        if self.on_result is not None:
            self.on_result(vendor, result)

    # Connection bookkeeping (handler threads and the serving thread).

    def await_request(self, conn: socket.socket, seconds: float) -> None:
        with self._lock:
            if conn in self._deadlines:
                self._deadlines[conn] = time.monotonic() + seconds

    def handling(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._deadlines:
                self._deadlines[conn] = None

    def open_connections(self) -> int:
        with self._lock:
            return len(self._deadlines)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._room:
            # Past the bound, the longest-waiting connection makes room. A dropped connection counts
            # until its thread closes it (at once), so allow twice the bound for a moment; when
            # every connection is being answered, wait a moment for one to finish, then refuse.
            full = len(self._deadlines) >= self.max_connections
            limit = 2 * self.max_connections if not full or self._make_room() else self.max_connections
            if not self._room.wait_for(lambda: len(self._deadlines) < limit, timeout=1.0):
                log.debug("webhook connection from %s refused: %d connections open", client_address,
                          len(self._deadlines))
                super().shutdown_request(request)
                return
            self._deadlines[request] = time.monotonic() + self.request_timeout
        super().process_request(request, client_address)

    def _make_room(self) -> bool:
        """Drop the connection that has waited longest for its request (lock held); False if none waits."""
        waiting = [(deadline, conn) for conn, deadline in self._deadlines.items() if deadline is not None]
        if not waiting:
            return False
        self._drop(min(waiting, key=lambda pair: pair[0])[1])
        return True

    def _drop(self, conn: socket.socket) -> None:
        """End a connection's reads (lock held): its thread sees end-of-file and closes it."""
        self._deadlines[conn] = None
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def service_actions(self) -> None:
        # serve_forever calls this at least every poll_interval: close connections past their deadline.
        now = time.monotonic()
        with self._lock:
            for conn, deadline in list(self._deadlines.items()):
                if deadline is not None and deadline <= now:
                    log.debug("webhook connection idle or slow past %.1f s: closed", self.request_timeout)
                    self._drop(conn)

    def shutdown_request(self, request: Any) -> None:
        # Forget and close under the lock, so no one shuts down a descriptor number reused since.
        with self._lock:
            self._deadlines.pop(request, None)
            super().shutdown_request(request)
            self._room.notify()

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            for conn in list(self._deadlines):
                self._drop(conn)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            request = super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                if not self._out_of_descriptors:
                    self._out_of_descriptors = True
                    log.error("The webhook listener cannot accept connections: %s (%s). It keeps trying, and "
                              "watch goes on polling; raise the open-files limit (ulimit -n, LimitNOFILE=) "
                              "if this repeats.", exc.strerror, errno.errorcode.get(exc.errno or 0, "?"))
                time.sleep(self.accept_pause)  # the socket stays readable: do not spin on it
            raise  # socketserver skips this accept
        if self._out_of_descriptors:
            self._out_of_descriptors = False
            log.info("The webhook listener accepts connections again.")
        return request

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up early (a registry's timeout) is not worth a traceback on stderr.
        log.debug("webhook connection from %s failed", client_address, exc_info=True)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"
