"""One registry host as RegistryClient sees it: its lanes, auth state, health, and the request loop that
ties them together (retries, circuit, pacing, 401 challenges, tokens)."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from acrtask.errors import RegistryError
from acrtask.reference import ImageRef
from acrtask.registry import media
from acrtask.registry.auth import MAX_SCOPES_PER_TOKEN, HostAuth, Token, parse_challenges, parse_token, repository_scope
from acrtask.registry.credentials import Credentials
from acrtask.registry.http import USER_AGENT, BodyTooLargeError, Connector, Reply
from acrtask.registry.transport import (
    FAILURE_STATUSES,
    RETRY_STATUSES,
    HostHealth,
    Policy,
    is_retryable,
    parse_rate_limit,
    parse_retry_after,
    status_error,
    transport_error,
)

log = logging.getLogger("acrtask.registry")

_TOKEN_FALLBACK = frozenset({400, 401, 404, 405})  # OAuth POST refused: use the GET flow (as containerd)
_URL_CACHE = 32768


class CredentialSource(Protocol):
    def get(self, registry: str) -> Credentials | None: ...


class Clocks(Protocol):
    """The injected time and randomness (RegistryClient's `sleep`, `clock`, `random`)."""

    sleep: Callable[[float], Awaitable[Any]]
    clock: Callable[[], float]
    random: Callable[[], float]


class RegistrySession:
    """All acrtask keeps about one registry host. `call` is the only way a request is sent to it."""

    def __init__(self, ref: ImageRef, plain: bool, policy: Policy, connector: Connector,
                 credentials: CredentialSource, clocks: Clocks) -> None:
        self.host = ref.api_host
        self.registry = ref.registry
        self.plain = plain
        self.policy = policy
        self.base = f"{'http' if plain else 'https'}://{self.host}"
        self.origin = httpx.URL(self.base)
        self.auth = HostAuth(policy.token_margin)
        self.health = HostHealth(self.host, policy, clocks.random)
        self._connector = connector
        self._lanes = connector.lanes(self.origin, direct=ref.is_loopback)
        self._credentials = credentials
        self._clocks = clocks
        self._inflight: dict[tuple[str, ...], asyncio.Future[None]] = {}
        self._credentials_lock = asyncio.Lock()
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        self._headers: dict[tuple[str, str], httpx.Headers] = {}

    def manifest_url(self, repository: str, reference: str) -> httpx.URL:
        key = (repository, reference)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            url = self._urls[key] = httpx.URL(f"{self.base}/v2/{repository}/manifests/{reference}")
        return url

    def headers(self, authorization: str, content_type: str = "") -> httpx.Headers:
        """Request headers per Authorization value (and body type), built once (Host included, so httpx adds
        nothing)."""
        key = (authorization, content_type)
        found = self._headers.get(key)
        if found is None:
            if len(self._headers) >= 1024:
                self._headers.clear()
            raw = [(b"Host", self.origin.netloc), (b"User-Agent", USER_AGENT.encode()),
                   (b"Accept", media.ACCEPT.encode())]
            if authorization:
                raw.append((b"Authorization", authorization.encode()))
            if content_type:
                raw.append((b"Content-Type", content_type.encode()))
            found = self._headers[key] = httpx.Headers(raw)
        return found

    def scrub(self, error: RegistryError) -> RegistryError:
        """Belt and braces: no secret may reach an error's text, whatever a server echoed."""
        for secret in self.auth.secrets():
            if secret and (secret in error.message or secret in (error.hint or "")):
                error.message = error.message.replace(secret, "***")
                error.hint = error.hint.replace(secret, "***") if error.hint else error.hint
                error.args = (error.message,)
        return error

    # -- the request loop ----------------------------------------------------------------------------------

    async def call(self, method: str, url: httpx.URL, scope: str | None, where: object,
                   passthrough: frozenset[int] = frozenset(), *, limit: int = 0,
                   token_request: tuple[httpx.Headers, bytes | None] | None = None,
                   body: bytes | None = None, content_type: str = "") -> Reply:
        """Send with retries (connect errors, timeouts, 408/429/5xx), the circuit and pacing, and auth (a
        401 is answered once). Returns 2xx answers and `passthrough` statuses; raises the rest. `body` (a
        manifest pushed, sent again on a retry) goes with `content_type`; `scope` may hold several scopes
        separated by spaces, fetched as one token (a cross-repository mount needs two)."""
        policy, health, auth, clocks = self.policy, self.health, self.auth, self._clocks
        counted = method == "GET"  # registries such as Docker Hub count GETs against quotas, not HEADs
        attempt = 0
        challenged = False
        while True:
            now = clocks.clock()
            health.admit(now)
            if health.paused_until > now or (counted and health.interval):
                wait = health.delay(now, counted)
                if wait > 0:
                    await clocks.sleep(wait)
            authorization = ""
            if token_request is not None:
                headers, content, lanes = token_request[0], token_request[1], None
            else:
                found = auth.authorization(scope or "", now)
                if found is None:
                    await self._authenticate((scope or "",), where)
                    found = auth.authorization(scope or "", clocks.clock())
                authorization = found or ""
                headers, content, lanes = self.headers(authorization, content_type), body, self._lanes
            try:
                reply = await self._connector.send(lanes, method, url, headers, limit, content)
            except httpx.TransportError as exc:
                error = transport_error(exc, where, self.host if lanes is not None else url.host)
                health.failed(clocks.clock(), error.message)
                if is_retryable(exc) and attempt + 1 < policy.attempts:
                    log.debug("%s: %s; retrying", where, exc.__class__.__name__)
                    await clocks.sleep(policy.backoff(attempt, clocks.random))
                    attempt += 1
                    continue
                raise error from None
            except BodyTooLargeError as exc:
                health.succeeded()
                raise RegistryError(f"{where}: the answer is larger than {exc.limit // 1024} KiB; "
                                    "stopped reading.", "No manifest is that large; the registry is misbehaving.",
                                    code="SIZE_INVALID") from None
            status = reply.status
            if not auth.settled and not reply.foreign:
                auth.settled = True
            remaining = reply.headers.get("ratelimit-remaining")
            if remaining is not None:
                rate = parse_rate_limit(reply.headers.get("ratelimit-limit"), remaining)
                if rate is not None:
                    health.observe(rate)
            if status < 300 or status in passthrough:
                health.succeeded()
                return reply
            if status == 401 and token_request is None and not challenged and not reply.foreign:
                health.succeeded()
                challenged = True
                await self._challenged(scope or "", reply, where, authorization)
                continue
            now = clocks.clock()
            if status in FAILURE_STATUSES:
                health.failed(now, f"{status} {httpx.codes.get_reason_phrase(status)}")
            else:
                health.succeeded()
            if status in RETRY_STATUSES and attempt + 1 < policy.attempts:
                after = parse_retry_after(reply.headers.get("retry-after"), now)
                delay = policy.backoff(attempt, clocks.random) if after is None else min(after, policy.retry_after_cap)
                attempt += 1
                if status == 429:
                    health.pause(now, delay)  # every request to this registry waits (at the loop's top)
                else:
                    await clocks.sleep(delay)
                continue
            host = self.host if lanes is not None else url.host
            raise self.scrub(status_error(status, reply.content, where, host, self.registry))

    # -- auth ----------------------------------------------------------------------------------------------

    async def _challenged(self, scope: str, reply: Reply, where: object, sent: str) -> None:
        """Answer a 401: learn the scheme the registry asks for and get what it takes."""
        challenges = parse_challenges(", ".join(reply.headers.get_list("www-authenticate")))
        schemes = {c.scheme: c for c in reversed(challenges)}  # the first challenge of a scheme wins
        bearer, basic = schemes.get("bearer"), schemes.get("basic")
        if bearer is not None and bearer.realm:
            self.auth.learn_bearer(bearer)
            self.auth.drop(scope)
            await self._authenticate((scope,), where)
            return
        if basic is not None:
            credentials = await self.load_credentials()
            if credentials is None:
                raise RegistryError(f"{where}: {self.host} requires a login.",
                                    f"Log in with `docker login {self.registry}`; acrtask reads the Docker config.",
                                    code="UNAUTHORIZED", status=401)
            if sent and sent == credentials.basic_header():
                raise status_error(401, reply.content, where, self.host, self.registry)
            self.auth.learn_basic(credentials)
            return
        raise status_error(401, reply.content, where, self.host, self.registry)

    async def _authenticate(self, scopes: tuple[str, ...], where: object) -> None:
        """Fetch a token for `scopes`, once: concurrent requests for the same scopes wait for it."""
        pending = self._inflight.get(scopes)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[scopes] = future
        try:
            self.auth.store(scopes, await self._fetch_token(scopes, where))
            future.set_result(None)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            self._inflight.pop(scopes, None)

    async def _fetch_token(self, scopes: tuple[str, ...], where: object) -> Token:
        challenge = self.auth.challenge
        assert challenge is not None
        realm = httpx.URL(challenge.realm)
        if realm.scheme != "https" and not (realm.scheme == "http" and self.plain):
            raise RegistryError(f"{where}: {self.host} sent token service {challenge.realm[:100]!r}, which is "
                                "not HTTPS; acrtask sends no credentials there.",
                                "Ask the registry's operator to serve its token service over HTTPS.",
                                code="UNAUTHORIZED")
        credentials = await self.load_credentials()
        service = challenge.params.get("service")
        where = f"{where}: getting a token from {realm.host}"
        base = [(b"Host", realm.netloc), (b"User-Agent", USER_AGENT.encode()), (b"Accept", b"application/json")]
        reply: Reply | None = None
        if credentials is not None and credentials.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                    "client_id": "acrtask", "scope": " ".join(scopes)}
            if service:
                form["service"] = service
            headers = httpx.Headers([*base, (b"Content-Type", b"application/x-www-form-urlencoded")])
            reply = await self.call("POST", realm, None, where, _TOKEN_FALLBACK, limit=media.MAX_MANIFEST_BYTES,
                                    token_request=(headers, urllib.parse.urlencode(form).encode()))
            if reply.status in _TOKEN_FALLBACK:
                reply = None
        if reply is None:
            params: list[tuple[str, str | int | float | bool | None]] = [
                ("scope", part) for scope in scopes for part in scope.split()]
            if service:
                params.insert(0, ("service", service))
            raw = list(base)
            if credentials is not None:
                raw.append((b"Authorization", credentials.basic_header().encode()))
            reply = await self.call("GET", realm.copy_merge_params(params), None, where,
                                    limit=media.MAX_MANIFEST_BYTES, token_request=(httpx.Headers(raw), None))
        return parse_token(reply.content, self._clocks.clock(), where)

    async def load_credentials(self) -> Credentials | None:
        auth = self.auth
        if not auth.credentials_loaded:
            async with self._credentials_lock:
                if not auth.credentials_loaded:
                    # Files and helper processes block: keep them off the event loop.
                    auth.credentials = await asyncio.to_thread(self._credentials.get, self.registry)
                    auth.credentials_loaded = True
        return auth.credentials

    async def prefetch_tokens(self, repositories: set[str]) -> None:
        """One token for many repositories (see auth.py); failures are left to each request to report."""
        now = self._clocks.clock()
        scopes = sorted(s for s in map(repository_scope, repositories) if self.auth.needs_token(s, now))
        if len(scopes) < 2:
            return  # a single repository gets its token on its first request anyway
        for start in range(0, len(scopes), MAX_SCOPES_PER_TOKEN):
            chunk = tuple(scopes[start:start + MAX_SCOPES_PER_TOKEN])
            try:
                await self._authenticate(chunk, f"{self.host} ({len(chunk)} repositories)")
            except RegistryError as exc:
                log.debug("shared token for %s failed: %s", self.host, exc.message)
                return

    async def authorization(self, scope: str, where: object) -> str:
        """The Authorization value `call` would send for `scope` now (a token fetched first when one is due),
        for requests whose bodies stream outside `call` (blobs). Call it after `call` has met the registry."""
        found = self.auth.authorization(scope, self._clocks.clock())
        if found is None:
            await self._authenticate((scope,), where)
            found = self.auth.authorization(scope, self._clocks.clock())
        return found or ""
