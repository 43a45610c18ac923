"""The watch loop's book of base tags: when each is checked next, what it was last seen at, why its last check
failed, and which are due now. Pure bookkeeping (time and randomness come in), owned by the loop's thread."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from acrtask.errors import CircuitOpenError
from acrtask.triggers import BaseKey, Interest
from acrtask.watch.checks import CheckResult, Outages, retried_early
from acrtask.watch.retries import retry_delay
from acrtask.watch.view import BaseStatus

Batches = dict[str, dict[BaseKey, str | None]]  # registry -> its due tags -> the run that pushed each


class Cadence(Protocol):
    """How often a tag is polled (cadence.PollSchedule)."""

    def interval(self, key: BaseKey) -> float:
        """Seconds until the next check after a good one (random for slow registries)."""

    def shortest(self, key: BaseKey) -> float:
        """The shortest of those."""


class TagBook:
    def __init__(self, cadence: Cadence, *, retry_first: float, retry_cap: float, retry_early: bool) -> None:
        self.cadence = cadence
        self.retry_first, self.retry_cap, self.retry_early = retry_first, retry_cap, retry_early
        self.next_check: dict[BaseKey, float] = {}  # inf: its check is in flight
        self.last_check: dict[BaseKey, float] = {}
        self.last_digest: dict[BaseKey, str] = {}
        self.errors: dict[BaseKey, str] = {}
        self.failures: dict[BaseKey, int] = {}  # failed checks in a row
        self.due_now: dict[BaseKey, str | None] = {}  # tag -> the run that pushed it, if acrtask did
        self.outages = Outages()
        self._retry_upstream: dict[BaseKey, str] = {}  # a failed check's pushing run, for its retry

    def watch(self, added: Collection[BaseKey], removed: Collection[BaseKey], now: float) -> None:
        """Tags that tasks started or stopped watching: new ones are checked at once."""
        for key in added:
            self.next_check.setdefault(key, now)
        for key in removed:
            self.next_check.pop(key, None)
            self.due_now.pop(key, None)

    def due(self, now: float, watched: Collection[BaseKey], busy: Collection[str]) -> Batches:
        """The tags to check now, per registry whose previous batch has come back; marked in flight."""
        keys = {k for k, t in self.next_check.items() if t <= now} | {k for k in self.due_now if k in watched}
        batches: Batches = {}
        for key in sorted(keys):
            if key.registry not in busy:  # its batch is in flight: these go in the next one
                upstream = self.due_now.pop(key, None) or self._retry_upstream.pop(key, None)
                batches.setdefault(key.registry, {})[key] = upstream
                self.next_check[key] = math.inf  # set again when its result comes
        return batches

    def wake(self, busy: Collection[str]) -> float:
        """When the next tag falls due (tags of registries with a batch in flight wait for it)."""
        return min((t for k, t in self.next_check.items() if k.registry not in busy), default=math.inf)

    def any_due(self, now: float) -> bool:
        return bool(self.due_now) or any(t <= now for t in self.next_check.values())

    def record(self, result: CheckResult, watched: Collection[BaseKey], now: float,
               ) -> tuple[list[tuple[BaseKey, str, str | None]], list[str]]:
        """Take a batch's result in: (the tags that answered, with digest and pushing run; lines to log)."""
        outcome = {key: result.digests.get(key) for key in result.upstreams}
        lines = [line] if (line := self.outages.observe(result.registry, outcome)) else []
        # Tags that met the circuit still open while another tag's probe closed it: check them at once.
        probed = any(isinstance(value, str) for value in outcome.values())
        answered = []
        for key, upstream in result.upstreams.items():
            if key not in watched:
                continue  # no task watches it any more
            value = outcome[key]
            self.last_check[key] = now
            if isinstance(value, str):
                self.failures.pop(key, None)
                self.errors.pop(key, None)
                self.last_digest[key] = value
                self.next_check[key] = now + self.cadence.interval(key)
                answered.append((key, value, upstream))
            elif (line := self.failed(key, value, upstream, now, at_once=probed)) is not None:
                lines.append(line)
        return answered, lines

    def failed(self, key: BaseKey, error: object, upstream: str | None, now: float, *,
               at_once: bool = False) -> str | None:
        """Schedule the next try: soon after an outage or local trouble (doubling, at most half the tag's
        shortest poll interval), at the next poll after a registry's answer about the tag (404, 401). The
        line to log, if any: none while the registry's down line tells it."""
        failures = self.failures[key] = self.failures.get(key, 0) + 1
        wait = self.cadence.interval(key)
        if self.retry_early and retried_early(error):
            cap = min(self.retry_cap, self.cadence.shortest(key) / 2)
            wait = min(wait, retry_delay(error, failures, self.retry_first, cap))
            if at_once and isinstance(error, CircuitOpenError):
                wait = 0.0
        self.next_check[key] = now + wait
        if upstream:
            self._retry_upstream[key] = upstream
        self.errors[key] = str(error)
        return None if self.outages.quiet(key.registry, error) else f"Check of {key} failed: {error}"

    def statuses(self, interests: Mapping[BaseKey, Sequence[Interest]]) -> tuple[BaseStatus, ...]:
        """For the live view; no next check while one is in flight."""
        return tuple(
            BaseStatus(str(key), tuple(i.task for i in watchers), self.last_check.get(key),
                       None if math.isinf(t := self.next_check.get(key, math.inf)) else t,
                       self.last_digest.get(key), self.errors.get(key))
            for key, watchers in sorted(interests.items())
        )
