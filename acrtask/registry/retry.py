"""The retry layer: connect errors, timeouts and 408/429/5xx answers are tried again, up to
`policy.attempts` tries, after an exponential, jittered backoff or the registry's Retry-After (capped). A
429 pauses every request to the registry (the pacing layer waits it out), not just this one.

What is not retried passes up: an answer as it came, a failure below HTTP as a RegistryError with a hint."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from acrtask.registry.health import HostHealth
from acrtask.registry.http import Reply
from acrtask.registry.request import Request, Sender
from acrtask.registry.rules import RETRY_STATUSES, Policy, is_retryable, parse_retry_after, transport_error

log = logging.getLogger("acrtask.registry")


class Retry:
    __slots__ = ("_inner", "policy", "_health", "_clock", "_sleep", "_random")

    def __init__(self, inner: Sender, policy: Policy, health: HostHealth, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[Any]], random: Callable[[], float]) -> None:
        self._inner, self.policy, self._health = inner, policy, health
        self._clock, self._sleep, self._random = clock, sleep, random

    async def send(self, request: Request) -> Reply:
        policy = self.policy
        attempt = 0
        while True:
            try:
                reply = await self._inner.send(request)
            except httpx.TransportError as exc:
                if is_retryable(exc) and attempt + 1 < policy.attempts:
                    log.debug("%s: %s; retrying", request.where, exc.__class__.__name__)
                    await self._sleep(policy.backoff(attempt, self._random))
                    attempt += 1
                    continue
                raise transport_error(exc, request.where, request.host) from None
            status = reply.status
            if status not in RETRY_STATUSES or status in request.passthrough or attempt + 1 >= policy.attempts:
                return reply
            now = self._clock()
            after = parse_retry_after(reply.headers.get("retry-after"), now)
            delay = policy.backoff(attempt, self._random) if after is None else min(after, policy.retry_after_cap)
            attempt += 1
            if status == 429:
                self._health.pause(now, delay)
            else:
                await self._sleep(delay)
