"""The authorize layer: put the Authorization a request's scope needs on it (a token fetched first when one
is due), and answer one 401 by learning the scheme the registry asks for (a bearer token service, or Basic
with the Docker config's login), then sending again.

Tokens are fetched through `fetch`, the stack without this layer; concurrent requests for the same scopes
share one fetch. Credentials are read once per registry, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable
from typing import Protocol

import httpx

from acrtask import media
from acrtask.errors import RegistryError
from acrtask.registry.auth import MAX_SCOPES_PER_TOKEN, HostAuth, Token, parse_challenges, parse_token, repository_scope
from acrtask.registry.credentials import Credentials
from acrtask.registry.http import USER_AGENT, Reply
from acrtask.registry.request import Request, Sender
from acrtask.registry.rules import status_error

log = logging.getLogger("acrtask.registry")

_TOKEN_FALLBACK = frozenset({400, 401, 404, 405})  # OAuth POST refused: use the GET flow (as containerd)


class CredentialSource(Protocol):
    def get(self, registry: str) -> Credentials | None: ...


class Authorize:
    """`host` and `registry` name the registry in errors; `plain` allows an http token service (a plain-HTTP
    registry's); `headers(authorization, content_type)` builds a request's headers (cached by the session)."""

    def __init__(self, inner: Sender, fetch: Sender, auth: HostAuth, credentials: CredentialSource, *,
                 host: str, registry: str, plain: bool, headers: Callable[[str, str], httpx.Headers],
                 clock: Callable[[], float]) -> None:
        self._inner, self._fetch, self.auth, self._credentials = inner, fetch, auth, credentials
        self._host, self._registry, self._plain, self._headers, self._clock = host, registry, plain, headers, clock
        self._inflight: dict[tuple[str, ...], asyncio.Future[None]] = {}
        self._credentials_lock = asyncio.Lock()

    async def send(self, request: Request) -> Reply:
        while True:
            authorization = await self.authorization(request.scope, request.where)
            request.headers = self._headers(authorization, request.content_type)
            reply = await self._inner.send(request)
            if reply.foreign:
                return reply  # another host's answer (after a redirect): never trust its challenges
            self.auth.settled = True
            if reply.status != 401 or request.challenged or 401 in request.passthrough:
                return reply
            request.challenged = True
            await self._challenged(request.scope, reply, request.where, authorization)

    async def authorization(self, scope: str, where: object) -> str:
        """The Authorization value for `scope` now (a token fetched first when one is due); "" for none."""
        found = self.auth.authorization(scope, self._clock())
        if found is None:
            await self._authenticate((scope,), where)
            found = self.auth.authorization(scope, self._clock())
        return found or ""

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
                raise RegistryError(f"{where}: {self._host} requires a login.",
                                    f"Log in with `docker login {self._registry}` (acrtask reads the Docker config), "
                                    "or give a task its own login with `acrtask task credential add`.",
                                    code="UNAUTHORIZED", status=401)
            if sent and sent == credentials.basic_header():
                raise status_error(401, reply.content, where, self._host, self._registry)
            self.auth.learn_basic(credentials)
            return
        raise status_error(401, reply.content, where, self._host, self._registry)

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
        if realm.scheme != "https" and not (realm.scheme == "http" and self._plain):
            raise RegistryError(f"{where}: {self._host} sent token service {challenge.realm[:100]!r}, which is "
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
            reply = await self._fetch.send(Request(
                "POST", realm, where, realm.host, None, passthrough=_TOKEN_FALLBACK, limit=media.MAX_MANIFEST_BYTES,
                body=urllib.parse.urlencode(form).encode(), headers=headers))
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
            url = realm.copy_merge_params(params)
            reply = await self._fetch.send(Request("GET", url, where, url.host, None, limit=media.MAX_MANIFEST_BYTES,
                                                   headers=httpx.Headers(raw)))
        return parse_token(reply.content, self._clock(), where)

    async def load_credentials(self) -> Credentials | None:
        auth = self.auth
        if not auth.credentials_loaded:
            async with self._credentials_lock:
                if not auth.credentials_loaded:
                    # Files and helper processes block: keep them off the event loop.
                    auth.credentials = await asyncio.to_thread(self._credentials.get, self._registry)
                    auth.credentials_loaded = True
        return auth.credentials

    async def prefetch_tokens(self, repositories: set[str]) -> None:
        """One token for many repositories (see auth.py); failures are left to each request to report."""
        now = self._clock()
        scopes = sorted(s for s in map(repository_scope, repositories) if self.auth.needs_token(s, now))
        if len(scopes) < 2:
            return  # a single repository gets its token on its first request anyway
        for start in range(0, len(scopes), MAX_SCOPES_PER_TOKEN):
            chunk = tuple(scopes[start:start + MAX_SCOPES_PER_TOKEN])
            try:
                await self._authenticate(chunk, f"{self._host} ({len(chunk)} repositories)")
            except RegistryError as exc:
                log.debug("shared token for %s failed: %s", self._host, exc.message)
                return
