"""The pacing layer: wait out a registry's 429 pause and, when its RateLimit-Remaining runs low, spread the
requests it counts (GETs) over what is left of its window. Reads the RateLimit-* headers of every answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from acrtask.registry.health import HostHealth, parse_rate_limit
from acrtask.registry.http import Reply
from acrtask.registry.request import Request, Sender


class Pacing:
    __slots__ = ("_inner", "_health", "_clock", "_sleep")

    def __init__(self, inner: Sender, health: HostHealth, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[Any]]) -> None:
        self._inner, self._health, self._clock, self._sleep = inner, health, clock, sleep

    async def send(self, request: Request) -> Reply:
        health = self._health
        if health.paused_until or (health.interval and request.counted):  # neither: the hot path
            wait = health.delay(self._clock(), request.counted)
            if wait > 0:
                await self._sleep(wait)
        reply = await self._inner.send(request)
        remaining = reply.headers.get("ratelimit-remaining")
        if remaining is not None:
            rate = parse_rate_limit(reply.headers.get("ratelimit-limit"), remaining)
            if rate is not None:
                health.observe(rate)
        return reply
