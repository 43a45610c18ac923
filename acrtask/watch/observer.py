"""What watch tells the parts that serve it (metrics, health, systemd, the status page, notifications).

The loop calls each observer on its own thread, at a few points: every tick, each registry batch's result,
each run queued, each run ended, and when it stops. An observer must be quick (it delays the loop) and
must not raise; `Observers` fans out and keeps one observer's bug from stopping the loop or the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from acrtask.model import Task
from acrtask.run_record import Run
from acrtask.triggers import BaseKey, Interest, WatchPlan
from acrtask.watch.checks import CheckResult
from acrtask.watch.view import Snapshot

log = logging.getLogger("acrtask.watch")


class WatchState(Protocol):
    """What observers may read of the loop on a tick (the Watcher is one; observers need no more of it)."""

    @property
    def plan(self) -> WatchPlan: ...

    @property
    def tasks(self) -> Mapping[str, Task]: ...

    @property
    def queued(self) -> Mapping[str, object]: ...

    @property
    def running(self) -> Mapping[str, object]: ...

    def snapshot(self) -> Snapshot: ...


class WatchObserver(Protocol):
    def ticked(self, watcher: WatchState, now: float) -> None:
        """The loop is alive; read what you need of `watcher` now (this is its thread)."""

    def checked(self, result: CheckResult, interests: Mapping[BaseKey, Sequence[Interest]]) -> None:
        """A registry's batch came back (before its changes are acted on)."""

    def queued(self, task: Task, run: Run) -> None:
        """A trigger queued `run`."""

    def finished(self, run: Run) -> None:
        """A run of this watch ended."""

    def stopping(self) -> None:
        """The loop stops scheduling; running builds may still finish."""


class Observer:
    """Does nothing: observers override what they need."""

    def ticked(self, watcher: WatchState, now: float) -> None:
        return None

    def checked(self, result: CheckResult, interests: Mapping[BaseKey, Sequence[Interest]]) -> None:
        return None

    def queued(self, task: Task, run: Run) -> None:
        return None

    def finished(self, run: Run) -> None:
        return None

    def stopping(self) -> None:
        return None


class Observers(Observer):
    def __init__(self, observers: Sequence[WatchObserver] = ()) -> None:
        self.observers = list(observers)
        self._failed: set[tuple[int, str]] = set()

    def _each(self, method: str, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception:  # a bug in metrics or notifications must not stop the watch
                if (id(observer), method) not in self._failed:  # once each, not on every tick
                    self._failed.add((id(observer), method))
                    log.exception("%s.%s failed", type(observer).__name__, method)

    def ticked(self, watcher: WatchState, now: float) -> None:
        self._each("ticked", watcher, now)

    def checked(self, result: CheckResult, interests: Mapping[BaseKey, Sequence[Interest]]) -> None:
        self._each("checked", result, interests)

    def queued(self, task: Task, run: Run) -> None:
        self._each("queued", task, run)

    def finished(self, run: Run) -> None:
        self._each("finished", run)

    def stopping(self) -> None:
        self._each("stopping")
