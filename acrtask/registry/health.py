"""One registry's health: its failure streak and circuit, its 429 pause and its rate-limit pacing. Pure state
with a clock passed in; circuit.py and pacing.py are the layers that consult it around each request."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from acrtask.errors import CircuitOpenError
from acrtask.registry.rules import Policy


@dataclass(frozen=True, slots=True)
class RateLimit:
    """What a registry's RateLimit-* headers said last (`remaining` of `limit` per `window` seconds)."""

    limit: int
    remaining: int
    window: float


_QUOTA = re.compile(r"\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


def parse_rate_limit(limit: str | None, remaining: str | None) -> RateLimit | None:
    """`RateLimit-Limit: 100;w=21600` and `RateLimit-Remaining: 76;w=21600` (Docker Hub's form)."""
    if not remaining:
        return None
    left = _QUOTA.match(remaining)
    if left is None:
        return None
    top = _QUOTA.match(limit or "")
    window = (left.group(2) or (top.group(2) if top else None)) or "0"
    return RateLimit(int(top.group(1)) if top else 0, int(left.group(1)), float(window))


# -- the circuit and pacing -------------------------------------------------------------------------------


class HostHealth:
    """One registry's failure streak, circuit, 429 pause and rate-limit pacing.

    A registry that fails `circuit_threshold` times in a row is left alone for a while (doubling per
    trip); then one probe request is let through. Other registries keep their own state, so one bad
    registry never slows the rest.
    """

    def __init__(self, name: str, policy: Policy, random: Callable[[], float]) -> None:
        self.name = name
        self.policy = policy
        self.random = random
        self.failures = 0
        self.trips = 0
        self.open_until = 0.0
        self.probing = False
        self.probe_started = 0.0
        self.last_error = ""
        self.paused_until = 0.0   # set by 429s: nobody talks to this registry until then
        self.interval = 0.0       # set by low RateLimit-Remaining: spacing between counted requests
        self.next_slot = 0.0
        self.rate: RateLimit | None = None

    def admit(self, now: float) -> None:
        """Raise while the circuit is open; once the pause is over, let exactly one probe through."""
        if not self.open_until:
            return  # closed: the hot path
        stuck = self.probing and now > self.probe_started + self.policy.read_timeout * 2
        if now < self.open_until or (self.probing and not stuck):
            wait = max(0.0, self.open_until - now)
            raise CircuitOpenError(
                f"{self.name} is failing ({self.failures} errors in a row; last: {self.last_error}); "
                f"not contacting it for {wait:.0f}s.",
                "acrtask tries it again by itself; check the registry's status if this persists.",
                wait if now < self.open_until else self.policy.read_timeout)
        self.probing, self.probe_started = True, now

    def succeeded(self) -> None:
        """Any answer but a 5xx: the registry works."""
        if self.failures or self.open_until:
            self.failures = self.trips = 0
            self.open_until = 0.0
            self.probing = False

    def failed(self, now: float, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.open_until and not self.probing:
            return  # already open: requests that were in flight do not extend the pause
        if self.probing or self.failures >= self.policy.circuit_threshold:
            self.probing = False
            self.trips += 1
            pause = self.policy.circuit_base * 2 ** (min(self.trips, 32) - 1) * (0.75 + self.random() / 2)
            self.open_until = now + min(self.policy.circuit_cap, pause)  # the cap bounds recovery: see docs

    def pause(self, now: float, seconds: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)

    def observe(self, rate: RateLimit) -> None:
        """Slow down when little of the quota remains: spread what is left over the window."""
        self.rate = rate
        if rate.limit > 0 and rate.window > 0 and rate.remaining < rate.limit * self.policy.low_rate_fraction:
            self.interval = min(self.policy.pace_cap, rate.window / max(rate.remaining, 1))
        else:
            self.interval = 0.0

    def delay(self, now: float, counted: bool) -> float:
        """Seconds to wait before the next request; `counted` requests (GETs) also respect pacing."""
        start = max(now, self.paused_until)
        if counted and self.interval:
            start = max(start, self.next_slot)
            self.next_slot = start + self.interval  # claim the slot now, so concurrent callers queue up
        return start - now
