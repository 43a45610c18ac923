"""What watch shows, as values: the loop reports to a `WatchView`; the CLI picks a plain log or a live table
(cli/watch_view.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from acrtask.endpoint_status import EndpointStatus


@dataclass(frozen=True)
class BaseStatus:
    image: str
    tasks: tuple[str, ...]
    last_check: float | None
    next_check: float | None
    digest: str | None
    error: str | None


@dataclass(frozen=True)
class Snapshot:
    bases: tuple[BaseStatus, ...] = ()
    running: tuple[tuple[str, str], ...] = ()   # (run id, task)
    queued: tuple[str, ...] = ()  # tasks with a run queued
    last_trigger: str | None = None
    endpoints: tuple[EndpointStatus, ...] = ()  # build endpoints, as this watch last saw them


class WatchView(Protocol):
    wants_snapshots: bool  # whether `update` does anything with the picture (building one costs)

    def event(self, message: str) -> None:
        """Something happened that an operator wants in the log."""

    def update(self, snapshot: Snapshot) -> None:
        """The current picture, for live displays; a plain log ignores it."""
