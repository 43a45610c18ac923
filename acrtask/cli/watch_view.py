"""The views of `task watch`: a plain log (timestamped lines), or on a terminal a live table of the bases, last
and next check, running builds and the last trigger."""

from __future__ import annotations

import sys
import time
from collections import deque
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from acrtask.watch.view import Snapshot


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


def _ago(moment: float | None, now: float) -> str:
    if moment is None:
        return "-"
    seconds = int(moment - now)
    sign = "in " if seconds >= 0 else ""
    seconds = abs(seconds)
    text = f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return f"{sign}{text}" + ("" if sign else " ago")


class LiveView:
    wants_snapshots = True

    def __init__(self) -> None:
        self.messages: deque[str] = deque(maxlen=8)
        self.snapshot = Snapshot()
        self.live = Live(self._render(), refresh_per_second=2, transient=False)
        self.live.start()

    def event(self, message: str) -> None:
        self.messages.append(time.strftime("%H:%M:%S ", time.gmtime()) + message)
        self.live.update(self._render())

    def update(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.live.update(self._render())

    def close(self) -> None:
        self.live.stop()

    def _render(self) -> Group:
        now = time.time()
        bases = Table(title="Base images", expand=True)
        for column in ("BASE IMAGE", "TASKS", "DIGEST", "LAST CHECK", "NEXT CHECK", "ERROR"):
            bases.add_column(column)
        for base in self.snapshot.bases:
            bases.add_row(base.image, ", ".join(base.tasks), (base.digest or "-")[:19],
                          _ago(base.last_check, now), _ago(base.next_check, now), base.error or "")
        parts: list[Table | Text] = [bases]
        if self.snapshot.endpoints:
            endpoints = Table(title="Build endpoints", expand=True)
            for column in ("ENDPOINT", "ENGINE", "STATE", "BUSY", "PLATFORMS", "DETAIL"):
                endpoints.add_column(column)
            for e in self.snapshot.endpoints:
                state = e.state if e.retry_in is None else f"{e.state} (retry in {e.retry_in:.0f}s)"
                endpoints.add_row(e.name, e.engine, state, f"{e.busy}/{e.slots}", ", ".join(e.platforms), e.detail)
            parts.append(endpoints)
        running = ", ".join(f"{run_id} ({task})" for run_id, task in self.snapshot.running) or "none"
        queued = ", ".join(self.snapshot.queued) or "none"
        lines = [Text(f"Running: {running}   Queued: {queued}"),
                 Text(f"Last trigger: {self.snapshot.last_trigger or 'none yet'}")]
        lines.extend(Text(m, style="dim") for m in self.messages)
        return Group(*parts, *lines)
