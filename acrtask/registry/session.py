"""One registry host as RegistryClient sees it: its connections, auth state and health, and the stack of
small layers every request to it goes down (request.py draws the stack; each layer is its own module)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from acrtask import media
from acrtask.errors import RegistryError
from acrtask.reference import ImageRef
from acrtask.registry.auth import HostAuth
from acrtask.registry.authorizer import Authorize, CredentialSource
from acrtask.registry.circuit import Circuit
from acrtask.registry.health import HostHealth
from acrtask.registry.http import USER_AGENT, BodyTooLargeError, Connector, Reply
from acrtask.registry.pacing import Pacing
from acrtask.registry.request import Connection, Request, Sender
from acrtask.registry.retry import Retry
from acrtask.registry.rules import Policy, status_error

__all__ = ["Answer", "Clocks", "CredentialSource", "RegistrySession"]

_URL_CACHE = 32768


class Clocks(Protocol):
    """The injected time and randomness (RegistryClient's `sleep`, `clock`, `random`)."""

    sleep: Callable[[float], Awaitable[Any]]
    clock: Callable[[], float]
    random: Callable[[], float]


class Answer:
    """The top layer: a status the caller did not accept becomes a RegistryError (secrets scrubbed), and so
    does an oversized body."""

    __slots__ = ("_inner", "_registry", "_scrub")

    def __init__(self, inner: Sender, registry: str, scrub: Callable[[RegistryError], RegistryError]) -> None:
        self._inner, self._registry, self._scrub = inner, registry, scrub

    async def send(self, request: Request) -> Reply:
        try:
            reply = await self._inner.send(request)
        except BodyTooLargeError as exc:
            raise RegistryError(f"{request.where}: the answer is larger than {exc.limit // 1024} KiB; "
                                "stopped reading.", "No manifest is that large; the registry is misbehaving.",
                                code="SIZE_INVALID") from None
        status = reply.status
        if status < 300 or status in request.passthrough:
            return reply
        raise self._scrub(status_error(status, reply.content, request.where, request.host, self._registry))


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
        self._lanes = connector.lanes(self.origin, direct=ref.is_loopback)
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        self._headers: dict[tuple[str, str], httpx.Headers] = {}
        below = Circuit(Pacing(Connection(connector), self.health, clocks.clock, clocks.sleep),
                        self.health, clocks.clock)
        self._token_retry = Retry(below, policy, self.health, clocks.clock, clocks.sleep, clocks.random)
        tokens = Answer(self._token_retry, self.registry, self.scrub)
        self.authorizer = Authorize(below, tokens, self.auth, credentials, host=self.host, registry=self.registry,
                                    plain=plain, headers=self.headers, clock=clocks.clock)
        self._retry = Retry(self.authorizer, policy, self.health, clocks.clock, clocks.sleep, clocks.random)
        self._stack = Answer(self._retry, self.registry, self.scrub)

    def use_policy(self, policy: Policy) -> None:
        """A changed policy (RegistryClient.cap_circuit) for every layer."""
        self.policy = self.health.policy = self._retry.policy = self._token_retry.policy = policy

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

    async def call(self, method: str, url: httpx.URL, scope: str | None, where: object,
                   passthrough: frozenset[int] = frozenset(), *, limit: int = 0,
                   body: bytes | None = None, content_type: str = "") -> Reply:
        """Send down the stack: 2xx answers and `passthrough` statuses come back, the rest raise. `body` (a
        manifest pushed, sent again on a retry) goes with `content_type`; `scope` may hold several scopes
        separated by spaces, fetched as one token (a cross-repository mount needs two)."""
        return await self._stack.send(Request(method, url, where, self.host, self._lanes, scope or "", passthrough,
                                              limit, body, content_type))

    async def authorization(self, scope: str, where: object) -> str:
        """The Authorization value `call` would send for `scope` now (a token fetched first when one is due),
        for requests whose bodies stream outside `call` (blobs). Call it after `call` has met the registry."""
        return await self.authorizer.authorization(scope, where)

    async def prefetch_tokens(self, repositories: set[str]) -> None:
        await self.authorizer.prefetch_tokens(repositories)
