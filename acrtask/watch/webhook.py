"""The listener of `watch --listen`: registry push notifications over plain HTTP (parsed in payloads.py)."""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from acrtask.watch.payloads import PushEvent, UnknownPayload, parse

log = logging.getLogger("acrtask.watch.webhook")

MAX_BODY = 1024 * 1024


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

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        url = urlsplit(self.path)
        if url.path != "/":
            return self._reply(404, "not found")
        if not token_ok(self.server.token, self.headers.get("Authorization"), url.query):
            return self._reply(401, "bad or missing token")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return self._reply(413, "body over 1 MiB")
        body = self.rfile.read(length)
        try:
            events = parse(body)
        except UnknownPayload as exc:
            return self._reply(400, f"unknown payload: {exc}")
        for event in events:
            self.server.on_event(event)
        self._reply(202 if events else 200, f"{len(events)} push event(s)")

    def _reply(self, status: int, message: str) -> None:
        payload = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server signature
        # The query string may carry the token: log the path only.
        log.debug("webhook %s %s", self.command, urlsplit(self.path).path)


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, token: str, on_event: Callable[[PushEvent], None]) -> None:
        self.token = token
        self.on_event = on_event
        if ":" in host:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="webhook",
                                  daemon=True)
        thread.start()
        return thread

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up early (a registry's timeout) is not worth a traceback on stderr.
        log.debug("webhook connection from %s failed", client_address, exc_info=True)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"


def parse_listen(text: str) -> tuple[str, int]:
    """`--listen [HOST:]PORT`; the host defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        from acrtask.errors import ValidationError

        raise ValidationError(f"Invalid --listen '{text}': expected [HOST:]PORT.",
                              "For example --listen 127.0.0.1:8080.")
    return (host.strip("[]") or "127.0.0.1"), int(port)
