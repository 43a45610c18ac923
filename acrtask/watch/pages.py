"""What `watch --listen` and `--metrics-listen` answer to GET: /metrics, /healthz, /readyz and the status
page at / (HTML for browsers, JSON otherwise).

Access: /healthz and /readyz are open (probes carry no secrets, and tell none). With a token set, /metrics
and / need it, as `Authorization: Bearer`, Basic auth (any user name, the token as password), `?token=`,
or the cookie a browser gets for `/?token=`: the page then redirects to / with an HttpOnly SameSite=Strict
cookie holding an HMAC of the token (never the token), so the token leaves the address bar and history.
The token is never echoed. Every page carries a strict Content-Security-Policy and no-store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from acrtask import __version__
from acrtask.run_record import Run
from acrtask.watch import statuspage
from acrtask.watch.board import StatusBoard
from acrtask.watch.health import Health
from acrtask.watch.metrics import CONTENT_TYPE as METRICS_TYPE
from acrtask.watch.metrics import WatchMetrics
from acrtask.watch.webhook import token_ok

COOKIE = "acrtask_status"
COOKIE_AGE = 12 * 3600
TEXT = "text/plain; charset=utf-8"
SECURITY_HEADERS = (
    ("Content-Security-Policy", statuspage.CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True)
class Page:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _text(status: int, text: str, *headers: tuple[str, str]) -> Page:
    return Page(status, TEXT, text.encode(), headers)


def session_value(token: str) -> str:
    """What the cookie holds: proof of the token that cannot be turned back into it."""
    return hmac.new(token.encode(), b"acrtask status page", hashlib.sha256).hexdigest()


class Access:
    def __init__(self, token: str | None) -> None:
        self.token = token or None

    def allowed(self, headers: Mapping[str, str], query: str) -> bool | None:
        """True, False (credentials offered and wrong), or None (none offered)."""
        if self.token is None:
            return True
        authorization = headers.get("Authorization") or ""
        if authorization.lower().startswith("basic "):
            return hmac.compare_digest(_basic_password(authorization[6:]).encode(), self.token.encode())
        if authorization or "token" in parse_qs(query):
            return token_ok(self.token, authorization or None, query)
        cookie = _cookie(headers.get("Cookie") or "")
        if cookie is not None:
            return hmac.compare_digest(cookie.encode(), session_value(self.token).encode())
        return None


def _basic_password(encoded: str) -> str:
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _cookie(header: str) -> str | None:
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    return jar[COOKIE].value if COOKIE in jar else None


class ServicePages:
    def __init__(self, metrics: WatchMetrics, health: Health, board: StatusBoard | None,
                 recent_runs: Callable[[], Sequence[Run]], token: str | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics, self.health, self.board = metrics, health, board
        self.recent_runs, self.access, self.clock = recent_runs, Access(token), clock

    def get(self, path: str, query: str, headers: Mapping[str, str]) -> Page:
        page = self._route(path, query, headers)
        return Page(page.status, page.content_type, page.body, page.headers + SECURITY_HEADERS)

    def _route(self, path: str, query: str, headers: Mapping[str, str]) -> Page:
        if path == "/healthz":
            verdict = self.health.liveness()
            return _text(200 if verdict.ok else 503, verdict.text("alive"))
        if path == "/readyz":
            verdict = self.health.readiness()
            return _text(200 if verdict.ok else 503, verdict.text("ready"))
        if path == "/favicon.ico":
            return Page(204, TEXT, b"")
        if path not in ("/metrics", "/") or (path == "/" and self.board is None):
            return _text(404, "not found: GET /metrics, /healthz, /readyz" + (", /" if self.board else "") + "\n")
        allowed = self.access.allowed(headers, query)
        if allowed is None:  # a browser shows its login box for Basic: any user, the token as password
            return _text(401, "a token is needed: Authorization: Bearer, Basic auth or ?token=\n",
                         ("WWW-Authenticate", 'Basic realm="acrtask watch", charset="UTF-8"'))
        if not allowed:
            return _text(401, "wrong token\n")
        if path == "/metrics":
            return Page(200, METRICS_TYPE, self.metrics.render())
        if "token" in parse_qs(query) and self.access.token is not None:
            cookie = (f"{COOKIE}={session_value(self.access.token)}; Path=/; Max-Age={COOKIE_AGE}; HttpOnly; "
                      "SameSite=Strict")
            return Page(303, TEXT, b"see /\n", (("Location", "/"), ("Set-Cookie", cookie)))
        return self._status(headers)

    def _status(self, headers: Mapping[str, str]) -> Page:
        assert self.board is not None
        facts = statuspage.StatusFacts(now=self.clock(), version=__version__, readiness=self.health.readiness(),
                                       picture=self.board.picture(), runs=tuple(self.recent_runs()))
        if "text/html" in (headers.get("Accept") or ""):
            return Page(200, "text/html; charset=utf-8", statuspage.render(facts).encode())
        return Page(200, "application/json", (json.dumps(statuspage.to_json(facts), indent=2) + "\n").encode())
