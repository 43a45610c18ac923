"""Checking base tags, one registry at a time: each registry's batch runs on a thread of its own and its
result comes back to the loop as an event, so a registry that hangs, fails or rate-limits delays only
its own bases; the loop, the webhook and every other registry carry on.

Also here: which failures are tried again early (`retried_early`), and the one-line-per-change summary
of a registry that stops answering (`Outages`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from acrtask import triggers
from acrtask.errors import RegistryError
from acrtask.platform import Platform
from acrtask.registry.health import CircuitOpenError, is_outage
from acrtask.triggers import BaseKey, Interest

PlatformKey = tuple[BaseKey, Platform | None]


class TagChecker(Protocol):
    def digests(self, keys: list[BaseKey]) -> dict[BaseKey, str | Exception]:
        """The digest each tag points to now (one HEAD each), or the error for that tag."""

    def platform_digest(self, key: BaseKey, digest: str, platform: Platform | None) -> str | None:
        """The manifest digest for `platform` under the tag's `digest` (itself for a single manifest)."""

    def cap_circuit(self, seconds: float) -> None:
        """Never leave a failing registry alone for longer than `seconds`."""


class StalePlatformsError(Exception):
    """The tasks on a tag changed while it was checked: a platform digest they need was not read."""


@dataclass(frozen=True)
class CheckResult:
    registry: str
    upstreams: dict[BaseKey, str | None]  # the batch: tag -> the run that pushed it, if acrtask did
    digests: dict[BaseKey, str | Exception]
    # Read on the check's thread for the tags that moved, so the loop never waits on a registry.
    platforms: dict[PlatformKey, str | None | Exception]

    def platform_lookup(self, key: BaseKey) -> Callable[[Platform | None], str | None]:
        """`platform -> digest` for triggers.decide, from what was read; raises what reading it raised."""

        def lookup(platform: Platform | None) -> str | None:
            if (key, platform) not in self.platforms:
                raise StalePlatformsError(str(key))
            found = self.platforms[(key, platform)]
            if isinstance(found, Exception):
                raise found
            return found

        return lookup


class RegistryChecks:
    """Each batch on a thread of its own, so batches of different registries run side by side (the scheduler
    sends at most one per registry at a time)."""

    def __init__(self, checker: TagChecker, deliver: Callable[[CheckResult], None]) -> None:
        self.checker = checker
        self.deliver = deliver

    def start(self, registry: str, batch: dict[BaseKey, str | None],
              interests: Mapping[BaseKey, list[Interest]]) -> None:
        worker = threading.Thread(target=self._check, args=(registry, batch, interests), daemon=True,
                                  name=f"check {registry}")  # daemon: a hanging registry never holds up exit
        try:
            worker.start()
        except RuntimeError as exc:  # no thread to be had: the batch fails now and is retried like any failure
            self.deliver(CheckResult(registry, batch, dict.fromkeys(batch, exc), {}))

    def _check(self, registry: str, batch: dict[BaseKey, str | None],
               interests: Mapping[BaseKey, list[Interest]]) -> None:
        try:
            digests = self.checker.digests(list(batch))
        except Exception as exc:  # e.g. out of file descriptors: every tag of the batch failed
            digests = dict.fromkeys(batch, exc)
        platforms: dict[PlatformKey, str | None | Exception] = {}
        for key, digest in digests.items():
            if not isinstance(digest, str):
                continue
            for interest in triggers.changed(interests.get(key, ()), digest):
                wanted = (key, interest.dependency.platform)
                if wanted not in platforms:
                    try:
                        platforms[wanted] = self.checker.platform_digest(key, digest, wanted[1])
                    except Exception as exc:
                        platforms[wanted] = exc
        self.deliver(CheckResult(registry, batch, digests, platforms))


def retried_early(error: object) -> bool:
    """Whether a failed check is tried again before the next poll: outages and local trouble (no file
    descriptors, no thread), not a registry's answer about the tag (404, 401, no such platform)."""
    return is_outage(error) if isinstance(error, RegistryError) else True


class Outages:
    """One line when a registry's tags stop being checkable and one when they are again, not one per check."""

    def __init__(self) -> None:
        self.down: dict[str, str] = {}  # registry -> the error that took it down

    def observe(self, registry: str, results: Mapping[BaseKey, object]) -> str | None:
        """The line to log for this batch's outcome, if the registry's state changed."""
        if not results:
            return None
        # A digest, or an answer about a tag (404, 401), says the registry is up.
        working = any(isinstance(value, str) or not retried_early(value) for value in results.values())
        if working and registry in self.down:
            del self.down[registry]
            return f"Registry {registry} is back: its tags are checked again."
        if not working and registry not in self.down:
            error = next(iter(results.values()))
            self.down[registry] = str(error)
            return (f"ERROR: Registry {registry} cannot be checked: {error} Its tags are tried again as it "
                    "recovers; a line will say when it is back.")
        return None

    def quiet(self, registry: str, error: object) -> bool:
        """Whether a tag's failure goes without a line of its own: the registry's down line tells it, or it
        only says that the registry's circuit is open (its failures were told when they happened)."""
        return isinstance(error, CircuitOpenError) or (registry in self.down and retried_early(error))
