"""What watch shows. The loop reports to a `WatchView`; the CLI picks a plain log or a live table."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TextIO

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
    pending: tuple[str, ...] = ()
    last_trigger: str | None = None
    endpoints: tuple[EndpointStatus, ...] = ()  # build endpoints, as this watch last saw them


class WatchView(Protocol):
    wants_snapshots: bool  # whether `update` does anything with the picture (building one costs)

    def event(self, message: str) -> None:
        """Something happened that an operator wants in the log."""

    def update(self, snapshot: Snapshot) -> None:
        """The current picture, for live displays; a plain log ignores it."""


class PlainView:
    """Timestamped lines, one per event: for logs, pipes and systemd's journal."""

    wants_snapshots = False

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def event(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self.stream.write(f"{stamp} {message}\n")
            self.stream.flush()
        except OSError:  # a log on a full disk loses the line; the watch goes on (ValueError: closed is a bug)
            pass

    def update(self, snapshot: Snapshot) -> None:
        return None
