"""The circuit layer: refuse to contact a registry whose circuit is open (CircuitOpenError), let one probe
through when its pause is over, and count each outcome: 5xx answers and failures below HTTP against it, any
other answer for it."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from acrtask.errors import FAILURE_STATUSES
from acrtask.registry.health import HostHealth
from acrtask.registry.http import BodyTooLargeError, Reply
from acrtask.registry.request import Request, Sender
from acrtask.registry.rules import transport_error


class Circuit:
    __slots__ = ("_inner", "_health", "_clock")

    def __init__(self, inner: Sender, health: HostHealth, clock: Callable[[], float]) -> None:
        self._inner, self._health, self._clock = inner, health, clock

    async def send(self, request: Request) -> Reply:
        health = self._health
        if health.open_until:  # closed: the hot path asks no clock
            health.admit(self._clock())
        try:
            reply = await self._inner.send(request)
        except httpx.TransportError as exc:
            health.failed(self._clock(), transport_error(exc, request.where, request.host).message)
            raise
        except BodyTooLargeError:
            health.succeeded()  # it answered (too much): it works
            raise
        status = reply.status
        if status in FAILURE_STATUSES:
            health.failed(self._clock(), f"{status} {httpx.codes.get_reason_phrase(status)}")
        else:
            health.succeeded()
        return reply
