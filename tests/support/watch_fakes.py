"""Fakes around watch's driver (acrtask/watch/loop.py) for tests that run it in process: a registry with
scripted answers, an executor that records what it is asked to run, a view that keeps its lines, and a
watch on a thread of its own. Real builds and registries are in tests/integration/test_watch.py."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Self

from acrtask.endpoint_status import EndpointStatus
from acrtask.model import Task
from acrtask.run_record import Run, RunStatus, RunTrigger
from acrtask.runs import RunStore
from acrtask.state import Database, StateStore
from acrtask.triggers import BaseKey
from acrtask.watch.loop import RunExecutor, Watcher, WatchOptions
from acrtask.watch.observer import WatchObserver
from acrtask.watch.view import Snapshot
from tests.support.waiting import wait_for

BASE = "reg.local:5000/base:1"
KEY = BaseKey("reg.local:5000", "base", "1")


class ScriptedRegistry:
    """Every tag is at `digest`; every platform under it at `platform_digest` (or the lookup fails)."""

    def __init__(self, digest: str, platform_digest: str | None = None, fail_platform: bool = False) -> None:
        self.digest, self.platform, self.fail_platform = digest, platform_digest or digest, fail_platform
        self.heads: list[BaseKey] = []
        self.circuit_cap: float | None = None

    def digests(self, keys: list[BaseKey]) -> dict[BaseKey, str | Exception]:
        self.heads.extend(keys)
        return {key: self.digest for key in keys}

    def platform_digest(self, key: BaseKey, digest: str, platform: str | None) -> str | None:
        if self.fail_platform:
            raise ConnectionError("registry went away")
        return self.platform

    def cap_circuit(self, seconds: float) -> None:
        self.circuit_cap = seconds


class RecordingExecutor:
    """Records runs in order and finishes them as Succeeded without building anything."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self.order: list[tuple[str, RunTrigger]] = []

    def queue(self, task: Task, trigger: RunTrigger) -> Run:
        return self.runs.create(task, trigger)

    def execute(self, run: Run, task: Task, emit: Callable[[str], None], cancel: threading.Event) -> Run:
        self.order.append((task.name, run.trigger))
        return self.runs.finish(replace(run, status=RunStatus.RUNNING), RunStatus.SUCCEEDED)


class LogLines:
    """The view: keeps every line. Snapshots are built anyway, so that code runs in these tests too."""

    wants_snapshots = True

    def __init__(self) -> None:
        self.lines: list[str] = []

    def event(self, message: str) -> None:
        self.lines.append(message)

    def update(self, snapshot: Snapshot) -> None:
        return None

    def watching(self) -> bool:
        """Whether watch has said it took its first look (every base checked once)."""
        return any(line.startswith("Watching ") for line in self.lines)


def stores(tmp_path: Path, tasks: list[Task]) -> tuple[StateStore, RunStore]:
    """A state database in `tmp_path` holding `tasks` (with their recorded dependencies), and its runs."""
    db = Database(tmp_path / "state.db")
    state = StateStore(db)
    with state.transaction() as tx:
        for t in tasks:
            tx.save(t)
    return state, RunStore(db, tmp_path / "runs")


def make(tmp_path: Path, tasks: list[Task], registry: ScriptedRegistry, once: bool = True,
         executor: Callable[[RunStore], RunExecutor] = RecordingExecutor, options: WatchOptions | None = None,
         clock: Callable[[], float] = time.time, observer: WatchObserver | None = None,
         endpoint_status: Callable[[], Sequence[EndpointStatus]] | None = None,
         ) -> tuple[Watcher, RunExecutor, LogLines]:
    """A watcher over `tasks` in a fresh state database (polled every 1-2 s unless `options` say otherwise)."""
    state, runs = stores(tmp_path, tasks)
    recorder, view = executor(runs), LogLines()
    settings = options or WatchOptions(once=once, poll_min=1, poll_max=2)
    watcher = Watcher(state, runs, registry, recorder, view, settings, clock=clock, rng=random.Random(1),
                      observer=observer, endpoint_status=endpoint_status)
    return watcher, recorder, view


class WatchThread:
    """`watcher.run()` on a thread of its own, for a long-running watch (not --once); stopped on exit, and
    its exit code must then be 0."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.outcome.append(self.watcher.run())
        except BaseException as exc:  # the loop died: the test must see it, not hang
            self.outcome.append(exc)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.watcher.stop()
        self.thread.join(15)
        assert self.outcome == [0], f"the watch loop ended with {self.outcome}"

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Wait for `condition` while the loop is alive (it must not have ended meanwhile)."""
        wait_for(lambda: condition() or bool(self.outcome), timeout, what, interval=0.01)
        assert not self.outcome, f"the watch loop ended: {self.outcome}"
