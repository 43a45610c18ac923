"""The status page's picture of the loop: built on the loop's own thread, and only when a page asks.

A page handler calls `picture()`: it raises a flag, the loop's next tick (within about a second) builds a
Picture, and the handler gets it. When nobody looks, nothing is built; when the loop is stuck, the page
gets the last picture there is (it shows its time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from acrtask.model import Task
from acrtask.watch.observer import Observer, WatchState
from acrtask.watch.view import Snapshot


@dataclass(frozen=True)
class Picture:
    at: float  # the loop's clock (Unix time) when it was taken
    snapshot: Snapshot
    tasks: tuple[Task, ...]
    cycles: tuple[tuple[str, ...], ...] = ()


class StatusBoard(Observer):
    def __init__(self, wait: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.wait, self.clock = wait, clock
        self.latest: Picture | None = None
        self._taken = 0  # pictures taken so far
        self._wanted = False
        self._ready = threading.Condition()

    def ticked(self, watcher: WatchState, now: float) -> None:
        if not self._wanted and self.latest is not None:
            return
        picture = Picture(now, watcher.snapshot(), tuple(sorted(watcher.tasks.values(), key=lambda t: t.name)),
                          tuple(tuple(group) for group in watcher.plan.cycles))
        with self._ready:
            self.latest, self._wanted = picture, False
            self._taken += 1
            self._ready.notify_all()

    def picture(self) -> Picture | None:
        """A picture taken after this call, or within `wait` seconds the last one there is."""
        with self._ready:
            taken = self._taken
            self._wanted = True
            self._ready.wait_for(lambda: self._taken > taken, timeout=self.wait)
            return self.latest
