"""Push notifications from registries: payload parsers (pure) and a small listener.

Payloads are told apart by their content: CNCF distribution's events envelope (v1 and v2 media
types), ACR webhooks, Docker Hub webhooks and Harbor webhooks. An event only says "look at this
tag now": the watch loop confirms it by resolving the tag before anything runs.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("acrtask.watch.webhook")

MAX_BODY = 1024 * 1024
MANIFEST_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
})


@dataclass(frozen=True)
class PushEvent:
    """A tag that was pushed. `host` is the registry's address when the payload says it."""

    source: str  # distribution | acr | dockerhub | harbor
    repository: str
    tag: str
    host: str | None = None
    digest: str | None = None


class UnknownPayload(ValueError):
    pass


def parse(body: bytes) -> list[PushEvent]:
    """Every tag push in a payload; other events (pulls, deletes, blobs) give an empty list."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnknownPayload(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnknownPayload("body is not a JSON object")
    if isinstance(data.get("events"), list):
        return [e for e in (_distribution(item) for item in data["events"]) if e]
    if "push_data" in data and "repository" in data:
        return _docker_hub(data)
    if "event_data" in data and "type" in data:
        return _harbor(data)
    if "action" in data and "target" in data:  # ACR: one event, no envelope
        event = _distribution(data, source="acr")
        return [event] if event else []
    if data.get("action") == "ping":
        return []
    raise UnknownPayload("not a distribution, ACR, Docker Hub or Harbor payload")


def _distribution(item: Any, source: str = "distribution") -> PushEvent | None:
    if not isinstance(item, dict) or item.get("action") != "push":
        return None
    target = item.get("target") or {}
    tag, repository = target.get("tag"), target.get("repository")
    media_type = (target.get("mediaType") or "").split(";")[0]
    if not tag or not repository or (media_type and media_type not in MANIFEST_TYPES):
        return None  # blob pushes and pushes by digest move no tag
    host = (item.get("request") or {}).get("host")
    return PushEvent(source, repository, tag, host or None, target.get("digest"))


def _docker_hub(data: dict[str, Any]) -> list[PushEvent]:
    repo = data.get("repository") or {}
    tag = (data.get("push_data") or {}).get("tag")
    name = repo.get("repo_name")
    if not tag or not name:
        raise UnknownPayload("Docker Hub payload without repository.repo_name or push_data.tag")
    if "/" not in name:
        name = f"library/{name}"
    return [PushEvent("dockerhub", name, tag, "docker.io")]


def _harbor(data: dict[str, Any]) -> list[PushEvent]:
    if data.get("type") not in ("PUSH_ARTIFACT", "pushImage"):
        return []
    event_data = data.get("event_data") or {}
    repo = (event_data.get("repository") or {}).get("repo_full_name")
    events = []
    for resource in event_data.get("resources") or []:
        tag = resource.get("tag")
        url = resource.get("resource_url") or ""
        host = url.split("/", 1)[0] if "/" in url else None
        if tag and repo:
            events.append(PushEvent("harbor", repo, tag, host, resource.get("digest")))
    return events


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
