"""What checking base tags yields, as values the scheduler reads: a registry batch's result (`CheckResult`),
which failures are tried again early (`retried_early`), and the one-line-per-change summary of a registry
that stops answering (`Outages`). The threads that do the checking are checking.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from acrtask.errors import CircuitOpenError, RegistryError, is_outage
from acrtask.platform import Platform
from acrtask.triggers import BaseKey

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
