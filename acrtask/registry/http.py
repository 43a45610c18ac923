"""The request layer under RegistryClient: per-registry connection lanes, redirects, capped bodies.

Why lanes rather than one pooled `httpx.AsyncClient` per registry (measured against a local registry at 16
requests in flight, on 2 CPUs shared with the registry; bench/poll.py reproduces the end result):

- httpcore's shared pool spends much of each request scanning its connections (it polls idle sockets and
  retries assignment under contention), and the client layer adds cookie, auth and hook machinery acrtask
  does not use: an out-of-the-box AsyncClient reached ~0.3-0.5 of the registry's `ab` ceiling, at
  ~1.5 ms of client CPU per HEAD.
- A registry here gets `concurrency` lanes, each owning one keep-alive HTTP/1.1 connection
  (`httpcore.AsyncHTTPConnection`, the connection class inside httpx), and a request borrows a whole
  lane: no pool bookkeeping and no Request/Response conversion. ~0.35 ms of CPU per HEAD (one-connection
  httpx transports per lane: ~0.55 ms), ~0.65 of the ceiling.
- With an injected transport (tests' `httpx.MockTransport`) or a proxy, lanes wrap an httpx transport
  instead; redirects, limits and errors are handled above the lanes, so both kinds behave alike.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore
import httpx

from acrtask.registry.rules import Policy, proxy_for

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 64 * 1024
USER_AGENT = "acrtask/0.1 (+httpx)"
KEEPALIVE_SECONDS = 5.0
RECHECK_SECONDS = 0.5  # a connection used this recently is taken as alive without polling it
_EMPTY = httpx.ByteStream(b"")

RequestHook = Callable[[str, httpx.URL], None]
ReplyHook = Callable[[str, httpx.URL, int | None, float], None]  # method, url, status (None: none), seconds


class BodyTooLargeError(Exception):
    """A success body went over its limit; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


@dataclass(slots=True)
class Reply:
    status: int
    headers: httpx.Headers
    content: bytes
    foreign: bool  # answered by another host after a redirect: never trust its challenges


class Lane(Protocol):
    async def exchange(self, method: str, url: httpx.URL, headers: httpx.Headers, content: bytes | None,
                       limit: int, extensions: dict[str, Any]) -> tuple[int, httpx.Headers, bytes]: ...

    async def aclose(self) -> None: ...


class CoreLane:
    """One keep-alive connection, used by one request at a time; reconnects when the server closed it."""

    __slots__ = ("_origin", "_ssl", "_connection", "_used")

    def __init__(self, url: httpx.URL, context: ssl.SSLContext | None) -> None:
        self._origin = httpcore.Origin(url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        self._ssl = context
        self._connection: httpcore.AsyncHTTPConnection | None = None
        self._used = 0.0

    def _connect(self) -> httpcore.AsyncHTTPConnection:
        self._connection = httpcore.AsyncHTTPConnection(self._origin, ssl_context=self._ssl,
                                                        keepalive_expiry=KEEPALIVE_SECONDS)
        return self._connection

    async def exchange(self, method: str, url: httpx.URL, headers: httpx.Headers, content: bytes | None,
                       limit: int, extensions: dict[str, Any]) -> tuple[int, httpx.Headers, bytes]:
        connection = self._connection
        now = time.monotonic()
        if connection is None:
            connection = self._connect()
        elif connection.is_closed() or (now - self._used > RECHECK_SECONDS and connection.has_expired()):
            # has_expired() polls the socket (did the server hang up?): worth it only after a pause
            await connection.aclose()
            connection = self._connect()
        self._used = now
        target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
        raw = headers.raw
        if content is not None or method in ("POST", "PUT"):  # httpcore adds no length: say it (0 included)
            raw = [*raw, (b"Content-Length", str(len(content or b"")).encode())]
        request = httpcore.Request(method, target, headers=raw, content=content, extensions=extensions)
        try:
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:  # closed under us between the check and the send
                await connection.aclose()
                response = await self._connect().handle_async_request(request)
            try:
                status = response.status
                reply_headers = httpx.Headers(response.headers)
                body = await _read(response.aiter_stream(), status, reply_headers, method, limit)
            finally:
                await response.aclose()
        except httpcore.TimeoutException as exc:
            raise _mapped(exc) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError) as exc:
            raise _mapped(exc) from exc
        return status, reply_headers, body

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None


class TransportLane:
    """A lane over any httpx transport: an injected one (tests), or a proxied one."""

    __slots__ = ("transport",)

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def exchange(self, method: str, url: httpx.URL, headers: httpx.Headers, content: bytes | None,
                       limit: int, extensions: dict[str, Any]) -> tuple[int, httpx.Headers, bytes]:
        if content is None:
            request = httpx.Request(method, url, headers=headers, stream=_EMPTY, extensions=extensions)
        else:
            request = httpx.Request(method, url, headers=headers, content=content, extensions=extensions)
        response = await self.transport.handle_async_request(request)
        try:
            status = response.status_code
            body = await _read(response.aiter_bytes(), status, response.headers, method, limit)
        finally:
            await response.aclose()
        return status, response.headers, body

    async def aclose(self) -> None:
        await self.transport.aclose()


def _mapped(exc: Exception) -> httpx.TransportError:
    """httpcore's exception as the httpx exception of the same name (what transport_error reads)."""
    kind = getattr(httpx, type(exc).__name__, None)
    if not (isinstance(kind, type) and issubclass(kind, httpx.TransportError)):
        kind = httpx.TransportError
    return kind(str(exc))


async def _read(chunks: Any, status: int, headers: httpx.Headers, method: str, limit: int) -> bytes:
    """Read the body: nothing for HEAD; success bodies up to `limit` (BodyTooLargeError beyond, without
    reading on); other bodies cut at 64 KiB. Always drain what is read so the connection can be reused."""
    if method == "HEAD":
        async for _ in chunks:
            pass
        return b""
    cut = status >= 300
    limit = ERROR_BODY_LIMIT if cut else limit
    length = headers.get("content-length")
    if not cut and length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLargeError(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            if cut:
                parts.append(chunk[: len(chunk) - (size - limit)])
                break
            raise BodyTooLargeError(limit)
        parts.append(chunk)
    return b"".join(parts)


class Lanes:
    """`size` lanes for one origin; `acquire` hands one out exclusively, the most recently used first (so a
    quiet period keeps one warm connection rather than many cold ones)."""

    def __init__(self, make: Callable[[], Lane], size: int) -> None:
        self._make = make
        self._free: list[Lane] = []
        self._all: list[Lane] = []
        self._slots = asyncio.Semaphore(size)

    async def acquire(self) -> Lane:
        await self._slots.acquire()
        if self._free:
            return self._free.pop()
        lane = self._make()  # made on demand: a registry with one tag keeps one connection
        self._all.append(lane)
        return lane

    def release(self, lane: Lane) -> None:
        self._free.append(lane)
        self._slots.release()

    async def aclose(self) -> None:
        lanes, self._all, self._free = self._all, [], []
        for lane in lanes:
            await lane.aclose()


class Connector:
    """Sends requests for RegistryClient: lanes per registry, one shared pool for other hosts (token
    services, redirect targets). A test passes one `transport` that serves every host."""

    def __init__(self, policy: Policy, *, transport: httpx.AsyncBaseTransport | None = None,
                 verify: ssl.SSLContext | bool = True, on_request: RequestHook | None = None,
                 on_reply: ReplyHook | None = None) -> None:
        self.policy = policy
        self._fixed = transport
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._on_request = on_request
        self._on_reply = on_reply
        self._lanes: list[Lanes] = []
        self._other: dict[tuple[str | None, str, str, int | None], TransportLane] = {}
        self._bulk: httpx.AsyncClient | None = None
        self._extensions: dict[str, Any] = {"timeout": {
            "connect": policy.connect_timeout, "read": policy.read_timeout,
            "write": policy.read_timeout, "pool": policy.read_timeout}}

    def _context(self) -> ssl.SSLContext:
        # One SSL context for every connection: building one reads the CA bundle (tens of ms).
        if self._ssl is None:
            verify = self._verify
            self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        return self._ssl

    def lanes(self, origin: httpx.URL, *, direct: bool = False) -> Lanes:
        """Lanes for one registry; `direct` (loopback) registries never go through a proxy."""
        size = self.policy.concurrency
        if self._fixed is not None:
            shared = TransportLane(self._fixed)
            found = Lanes(lambda: shared, size)
        else:
            proxy = None if direct else proxy_for(str(origin), origin.host)
            context = self._context() if origin.scheme == "https" else None
            if proxy is None:
                found = Lanes(lambda: CoreLane(origin, context), size)
            else:
                limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
                found = Lanes(lambda: TransportLane(httpx.AsyncHTTPTransport(
                    verify=context or True, limits=limits, proxy=proxy)), size)
        self._lanes.append(found)
        return found

    def _other_lane(self, url: httpx.URL) -> TransportLane:
        proxy = None if self._fixed is not None else proxy_for(str(url), url.host)
        # A pool per host: a hanging token service must not hold the connections another registry's needs.
        key = (proxy, url.scheme, url.host, url.port)
        found = self._other.get(key)
        if found is None:
            if self._fixed is not None:
                found = TransportLane(self._fixed)
            else:
                limits = httpx.Limits(max_connections=self.policy.concurrency, max_keepalive_connections=4)
                found = TransportLane(httpx.AsyncHTTPTransport(verify=self._context(), limits=limits, proxy=proxy))
            self._other[key] = found
        return found

    async def send(self, lanes: Lanes | None, method: str, url: httpx.URL, headers: httpx.Headers,
                   limit: int, content: bytes | None = None) -> Reply:
        """One request and its answer, following GET/HEAD redirects. `Authorization` never goes to a host
        other than the first one. Success bodies over `limit` raise BodyTooLargeError."""
        origin = (url.scheme, url.host, url.port)
        borrowed = await lanes.acquire() if lanes is not None else None
        try:
            lane: Lane = borrowed if borrowed is not None else self._other_lane(url)
            foreign = False
            for _ in range(MAX_REDIRECTS + 1):
                if self._on_request is not None:
                    self._on_request(method, url)
                status, reply_headers, body = await self._exchange(lane, method, url, headers, content, limit)
                location = reply_headers.get("location") if status in REDIRECT_STATUSES else None
                if not location or method not in ("GET", "HEAD"):
                    return Reply(status, reply_headers, body, foreign)
                url = url.join(location)
                if foreign or (url.scheme, url.host, url.port) != origin:
                    foreign = True  # once away from the registry, never back with its credentials
                    headers = _for_other_host(headers, url)
                    lane = self._other_lane(url)
            raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
        finally:
            if borrowed is not None and lanes is not None:
                lanes.release(borrowed)

    async def _exchange(self, lane: Lane, method: str, url: httpx.URL, headers: httpx.Headers,
                        content: bytes | None, limit: int) -> tuple[int, httpx.Headers, bytes]:
        if self._on_reply is None:
            return await lane.exchange(method, url, headers, content, limit, self._extensions)
        started = time.monotonic()
        status: int | None = None
        try:
            status, reply_headers, body = await lane.exchange(method, url, headers, content, limit, self._extensions)
            return status, reply_headers, body
        finally:
            self._on_reply(method, url, status, time.monotonic() - started)

    @asynccontextmanager
    async def stream(self, method: str, url: httpx.URL, headers: httpx.Headers,
                     content: AsyncIterator[bytes] | None = None) -> AsyncIterator[httpx.Response]:
        """One request whose body or answer is streamed (image blobs, up to gigabytes): never held whole.

        Blobs go through one plain httpx client rather than the lanes: they are few and large, so the lanes'
        per-request savings do not matter, and httpx streams both ways. GET redirects are followed (blob
        storage often lives on another host); httpx drops `Authorization` when a redirect leaves the origin.
        Loopback registries bypass proxies, as on the lanes."""
        client = self._bulk_client()
        request = client.build_request(method, url, headers=headers, content=content)
        response = await client.send(request, stream=True, follow_redirects=method == "GET")
        try:
            yield response
        finally:
            await response.aclose()

    def _bulk_client(self) -> httpx.AsyncClient:
        if self._bulk is None:
            policy = self.policy
            timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
            hooks: dict[str, list[Callable[..., Any]]] = {}
            if self._on_request is not None:
                hook = self._on_request

                async def seen(request: httpx.Request) -> None:
                    hook(request.method, request.url)

                hooks["request"] = [seen]
            if self._fixed is not None:
                self._bulk = httpx.AsyncClient(transport=self._fixed, timeout=timeout, event_hooks=hooks)
            else:
                context = self._context()
                direct = httpx.AsyncHTTPTransport(verify=context)
                mounts: dict[str, httpx.AsyncBaseTransport | None] = {
                    f"all://{host}": direct for host in ("127.0.0.1", "localhost", "[::1]")}
                self._bulk = httpx.AsyncClient(verify=context, timeout=timeout, event_hooks=hooks, mounts=mounts)
        return self._bulk

    async def aclose(self) -> None:
        if self._bulk is not None:
            bulk, self._bulk = self._bulk, None
            if self._fixed is None:
                await bulk.aclose()  # a fixed (test) transport belongs to whoever passed it in
        if self._fixed is None:
            for lanes in self._lanes:
                await lanes.aclose()
            for lane in self._other.values():
                await lane.aclose()
        self._lanes.clear()
        self._other.clear()


def _for_other_host(headers: httpx.Headers, url: httpx.URL) -> httpx.Headers:
    kept = [(k, v) for k, v in headers.raw if k.lower() not in (b"authorization", b"host")]
    return httpx.Headers([(b"Host", url.netloc), *kept])
