"""When a step that failed for a passing reason (a registry outage, a full disk, no file descriptors left) is
tried again: soon at first, doubling per failure in a row, never longer than a cap that watch keeps under
its poll interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

from acrtask.errors import CircuitOpenError
from acrtask.run_record import RunTrigger
from acrtask.triggers import BaseKey


def retry_delay(error: object, failures: int, first: float, cap: float) -> float:
    """Seconds until the next try: `first`, doubling per failure in a row, at most `cap`; for a registry
    whose circuit is open, not before it lets a request through (the circuit's pause is capped alike)."""
    backoff = min(cap, first * 2 ** (min(failures, 32) - 1))
    if isinstance(error, CircuitOpenError):
        return min(cap, max(backoff, error.retry_after))
    return backoff


@dataclass(frozen=True)
class Deferred:
    """A trigger whose run could not be queued: tried again at `at`."""

    task: str
    trigger: RunTrigger
    key: BaseKey | None  # the base tag that moved, if that was the trigger
    at: float
    failures: int


class DeferredTriggers:
    """At most one deferred trigger per task, as at most one queued run: later triggers are absorbed."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap = first, cap
        self.items: dict[str, Deferred] = {}

    def __contains__(self, task: str) -> bool:
        return task in self.items

    def __bool__(self) -> bool:
        return bool(self.items)

    def put(self, task: str, trigger: RunTrigger, key: BaseKey | None, failures: int, error: object,
            now: float) -> float:
        """Defer the trigger; returns the seconds until it is tried again."""
        delay = retry_delay(error, failures, self.first, self.cap)
        self.items[task] = Deferred(task, trigger, key, now + delay, failures)
        return delay

    def due(self, now: float) -> list[Deferred]:
        """The triggers to try again now, taken out."""
        ready = [item for item in self.items.values() if item.at <= now]
        for item in ready:
            del self.items[item.task]
        return ready

    def next_time(self) -> float:
        return min((item.at for item in self.items.values()), default=math.inf)
