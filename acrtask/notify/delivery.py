"""Sending notifications: a few worker threads with a queue, retries with backoff, never in a build's way.

`submit` never blocks and never raises: when the queue is full the notification is dropped (counted and
logged). A send that fails for the network, or gets 408, 429 or 5xx, is tried again after 2, 4, 8 ... s
(up to `attempts` tries); another 4xx is the receiver saying no, and is not retried. Redirects are not
followed, so a bearer token only ever goes to the URL it was given for.

What is logged says which endpoint (redacted: scheme, host and port), for what, and how it ended; never a
token, a URL's path, or a receiver's answer body.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from acrtask.notify.endpoints import redact, sendable

log = logging.getLogger("acrtask.notify")

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "acrtask-notify/0.1"


@dataclass(frozen=True)
class Delivery:
    channel: str  # update-trigger | notify: a metrics label
    what: str  # for log lines: "update trigger of app-task for run ca12"
    url: str
    body: dict[str, Any]
    token: str | None = None  # sent as `Authorization: Bearer`; never logged


class DeliverySink(Protocol):
    def attempted(self, channel: str, result: str) -> None:
        """One try: ok | http_error | network_error."""

    def settled(self, channel: str, outcome: str) -> None:
        """How a notification ended: delivered | failed | dropped | refused."""


class Dispatcher:
    def __init__(self, sink: DeliverySink, log_line: Callable[[str], None], *, attempts: int = 5,
                 first_delay: float = 2.0, max_delay: float = 60.0, timeout: float = 10.0, workers: int = 2,
                 max_queued: int = 1000, allowed_http: frozenset[str] = frozenset(),
                 client: httpx.Client | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.sink, self.log_line = sink, log_line
        self.attempts, self.first_delay, self.max_delay = attempts, first_delay, max_delay
        self.max_queued, self.allowed_http, self.clock = max_queued, allowed_http, clock
        self._client = client or _client(timeout)
        self._owns_client = client is None
        self._queue: list[tuple[float, int, Delivery, int]] = []  # (due, order, delivery, attempt)
        self._order = itertools.count()
        self._busy = 0
        self._closing = False
        self._lock = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"notify-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, delivery: Delivery) -> bool:
        """Queue a notification; False (and counted, and logged) when it was not taken."""
        if not sendable(delivery.url, self.allowed_http):
            self.sink.settled(delivery.channel, "refused")
            self.log_line(f"ERROR: Not sending the {delivery.what} to {redact(delivery.url)}: plain http to another "
                          "machine. Use https, or list the host in ACRTASK_NOTIFY_INSECURE_HOSTS.")
            return False
        with self._lock:
            if self._closing or len(self._queue) >= self.max_queued:
                full = not self._closing
            else:
                heapq.heappush(self._queue, (self.clock(), next(self._order), delivery, 1))
                self._lock.notify()
                return True
        self.sink.settled(delivery.channel, "dropped")
        self.log_line(f"ERROR: Dropped the {delivery.what} to {redact(delivery.url)}: "
                      + ("too many notifications are waiting." if full else "watch is stopping."))
        return False

    def close(self, grace: float = 10.0) -> None:
        """Let queued notifications go for up to `grace` seconds, then stop; what is left is dropped."""
        deadline = self.clock() + grace
        with self._lock:
            while (self._queue or self._busy) and self.clock() < deadline:
                self._lock.wait(timeout=min(0.1, max(0.0, deadline - self.clock())))
            self._closing = True
            left, self._queue = self._queue, []
            self._lock.notify_all()
        for _, _, delivery, _ in left:
            self.sink.settled(delivery.channel, "dropped")
            self.log_line(f"ERROR: Dropped the {delivery.what} to {redact(delivery.url)}: watch stopped before "
                          "it could be delivered.")
        for thread in self._threads:
            thread.join(timeout=1.0)
        if self._owns_client:
            self._client.close()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._busy

    # Workers.

    def _next(self) -> tuple[Delivery, int] | None:
        with self._lock:
            while not self._closing:
                now = self.clock()
                if self._queue and self._queue[0][0] <= now:
                    _, _, delivery, attempt = heapq.heappop(self._queue)
                    self._busy += 1
                    return delivery, attempt
                self._lock.wait(timeout=min(1.0, self._queue[0][0] - now) if self._queue else 1.0)
            return None

    def _work(self) -> None:
        while (item := self._next()) is not None:
            delivery, attempt = item
            try:
                self._send(delivery, attempt)
            except Exception:  # a bug here must not end the worker: the notification is lost, the watch is not
                log.exception("sending a notification failed")
                self.sink.settled(delivery.channel, "failed")
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

    def _send(self, delivery: Delivery, attempt: int) -> None:
        where = redact(delivery.url)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if delivery.token:
            headers["Authorization"] = f"Bearer {delivery.token}"
        try:
            reply = self._client.post(delivery.url, content=json.dumps(delivery.body).encode(), headers=headers)
            status: int | None = reply.status_code
            why = f"HTTP {status}"
        except httpx.HTTPError as exc:  # its text may hold the URL: only its kind is told
            status, why = None, type(exc).__name__
        if status is not None and 200 <= status < 300:
            self.sink.attempted(delivery.channel, "ok")
            self.sink.settled(delivery.channel, "delivered")
            tries = f" (try {attempt})" if attempt > 1 else ""
            self.log_line(f"Sent the {delivery.what} to {where}: {why}{tries}.")
            return
        self.sink.attempted(delivery.channel, "network_error" if status is None else "http_error")
        retried = status is None or status in RETRIED_STATUSES
        if retried and attempt < self.attempts:
            delay = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
            with self._lock:
                if not self._closing:
                    heapq.heappush(self._queue, (self.clock() + delay, next(self._order), delivery, attempt + 1))
                    self._lock.notify()
            self.log_line(f"Sending the {delivery.what} to {where} failed ({why}, try {attempt} of "
                          f"{self.attempts}); trying again in {delay:.0f}s.")
            return
        self.sink.settled(delivery.channel, "failed")
        reason = f"after {attempt} tries" if retried else "the receiver refused it; not retried"
        self.log_line(f"ERROR: Could not send the {delivery.what} to {where} ({why}; {reason}).")


def _client(timeout: float) -> httpx.Client:
    # Loopback receivers never go through a proxy (as the registry client does for loopback registries).
    direct = httpx.HTTPTransport()
    mounts: dict[str, httpx.BaseTransport | None] = {
        f"all://{host}": direct for host in ("127.0.0.1", "localhost", "[::1]")}
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, mounts=mounts)
