"""What travels down the registry transport's layers, and the layer at the bottom that sends it.

The layers (as go-containerregistry's transport stacks RoundTrippers), outermost first:

    Answer     -> a non-accepted status becomes a RegistryError, secrets scrubbed (session.py)
    Retry      -> connect errors, timeouts, 408/429/5xx tried again with backoff (retry.py)
    Authorize  -> the Authorization header; one 401 answered with a token or a login (authorizer.py)
    Circuit    -> a failing registry is left alone for a while (circuit.py)
    Pacing     -> a 429 pause and low RateLimit-Remaining spread requests out (pacing.py)
    Connection -> the request on one of the registry's connections (http.py's Connector)

Token requests take the same stack without Authorize. Each layer is a `Sender`: `send(request) -> Reply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from acrtask.registry.http import Connector, Lanes, Reply


@dataclass(slots=True)
class Request:
    """One request to a registry (or its token service). `where` names it in errors (formatted only then);
    `host` is the host errors name; `lanes` are the registry's connections (None: another host, such as a
    token service); `headers` are set by the Authorize layer, or given (token requests); `scope` is the
    token scope (several, separated by spaces, fetched as one token); `passthrough` statuses are answers,
    not errors; `limit` caps a success body; `challenged` is set once a 401 to it was answered (once per
    request, retries included)."""

    method: str
    url: httpx.URL
    where: object
    host: str
    lanes: Lanes | None
    scope: str = ""
    passthrough: frozenset[int] = frozenset()
    limit: int = 0
    body: bytes | None = None
    content_type: str = ""
    headers: httpx.Headers | None = None
    challenged: bool = False

    @property
    def counted(self) -> bool:
        """Registries such as Docker Hub count GETs against quotas, not HEADs."""
        return self.method == "GET"


class Sender(Protocol):
    async def send(self, request: Request) -> Reply: ...


class Connection:
    """The bottom layer: the request on the registry's lanes (or the shared pool for other hosts)."""

    __slots__ = ("_connector",)

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def send(self, request: Request) -> Reply:
        assert request.headers is not None, "the Authorize layer (or a token request) sets the headers"
        return await self._connector.send(request.lanes, request.method, request.url, request.headers,
                                          request.limit, request.body)
