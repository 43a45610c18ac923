"""The watch driver: threads, the event queue, the watch lock and reading the state, around the scheduler.

What to do is decided by the scheduler (scheduler.py, pure); this module only carries it out. Builds run
in worker threads, each registry's checks in a thread of their own (checking.py), the webhook listener in
its own, and all talk to the loop only through its queue of events (events.py), which one thread feeds
to the scheduler. Time and randomness are injected, so tests drive the loop without waiting.

Nothing that goes wrong in one step ends the loop: a full disk or no file descriptors left is logged
as one ERROR line and the step (a check, queuing a run) is tried again after a backoff.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from acrtask.endpoint_status import EndpointStatus
from acrtask.errors import AcrTaskError, StateError
from acrtask.files import HeldLock
from acrtask.memory import collector_paused
from acrtask.model import Task
from acrtask.recovery import FollowedRuns
from acrtask.run_record import Run, RunStatus, RunTrigger
from acrtask.runs import RunStore
from acrtask.state import StateStore
from acrtask.triggers import WatchPlan
from acrtask.watch.checking import RegistryChecks
from acrtask.watch.checks import TagChecker
from acrtask.watch.commits import CommitPoller
from acrtask.watch.events import (
    CancelQueued,
    CancelRunning,
    CheckTags,
    CommitSeen,
    Decision,
    Event,
    GraceOver,
    Note,
    OtherRunPushed,
    PushEvent,
    PushSeen,
    QueueFailed,
    QueueRun,
    RecordRefreshes,
    RunFinished,
    RunInterrupted,
    RunQueued,
    Say,
    StartRun,
    Stop,
    TagsChecked,
    TasksLoaded,
    Tick,
)
from acrtask.watch.lock import hold_watch_lock
from acrtask.watch.observer import Observer, WatchObserver
from acrtask.watch.options import WatchOptions
from acrtask.watch.scheduler import Building, Queued, Scheduler
from acrtask.watch.taskstate import TaskState
from acrtask.watch.view import Snapshot, WatchView

__all__ = ["RunExecutor", "WatchOptions", "Watcher"]

log = logging.getLogger("acrtask.watch")


class RunExecutor(Protocol):
    def queue(self, task: Task, trigger: RunTrigger) -> Run: ...

    def execute(self, run: Run, task: Task, emit: Callable[[str], None], cancel: threading.Event) -> Run: ...


class Watcher:
    def __init__(self, state: StateStore, runs: RunStore, checker: TagChecker, executor: RunExecutor,
                 view: WatchView, options: WatchOptions, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, commits: CommitPoller | None = None,
                 observer: WatchObserver | None = None,
                 endpoint_status: Callable[[], Sequence[EndpointStatus]] | None = None) -> None:
        self.state, self.runs, self.checker, self.executor = state, runs, checker, executor
        self.observer: WatchObserver = observer or Observer()  # metrics, health, notifications (observer.py)
        self.view, self.options, self.clock = view, options, clock
        self.commits = commits
        self.scheduler = Scheduler(options, rng)
        # SimpleQueue: its put is reentrant, so a signal handler may call stop() at any moment.
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.taskstate = TaskState(state)
        self.checks = RegistryChecks(checker, lambda result: self.events.put(TagsChecked(result)))
        self.followed = FollowedRuns(runs)  # runs of other processes (recovery.py)
        self.endpoint_status = endpoint_status  # the build endpoints, for the live view
        self._cancels: dict[str, threading.Event] = {}  # task -> its running build's cancel
        self._lock: HeldLock | None = None
        self._next_foreign_scan = 0.0
        self._commits_checked = False
        self._step_error: str | None = None  # the last ERROR a loop step logged (told once, not per tick)
        self._pool = ThreadPoolExecutor(max_workers=options.max_concurrent_runs, thread_name_prefix="build")

    # Inputs from other threads.

    def notify_push(self, events: list[PushEvent]) -> None:
        """The push events of one webhook body: handled, and logged, together."""
        self.events.put(PushSeen(tuple(events)))

    def note(self, message: str) -> None:
        """A line for the view from another thread (the build pool's endpoints, notification results)."""
        self.events.put(Note(message))

    def stop(self) -> None:
        self.stopping.set()
        self.events.put(Stop())  # wakes the loop, which then shuts down

    # What observers read, on the loop's thread.

    @property
    def plan(self) -> WatchPlan:
        return self.scheduler.plan

    @property
    def tasks(self) -> dict[str, Task]:
        return self.scheduler.tasks

    @property
    def queued(self) -> dict[str, Queued]:
        return self.scheduler.queued

    @property
    def running(self) -> dict[str, Building]:
        return self.scheduler.running

    def snapshot(self) -> Snapshot:
        """The current picture (bases, running and queued runs, build endpoints)."""
        picture = self.scheduler.picture()
        return replace(picture, endpoints=tuple(self.endpoint_status())) if self.endpoint_status else picture

    # The loop.

    def run(self) -> int:
        """Until stopped (or, with --once, until everything triggered has run).

        Returns the exit code: with --once, 1 if a run failed; a watch stopped by a signal exits 0.
        """
        self.open()
        try:
            while not self.stopping.is_set():
                self._guarded(self.tick)
                if self.options.once and self.scheduler.idle(self.clock()):
                    break
                self._guarded(self.wait)
        finally:
            self.observer.stopping()
            self.close()
        return 1 if self.options.once and self.scheduler.failed_runs else 0

    def open(self) -> None:
        """Take the watch lock, read the tasks, and settle runs left unfinished by a process that died."""
        self.state.db.check_integrity()  # a damaged database is reported before anything is run from it
        self._lock = hold_watch_lock(self.state.path)  # held until close()
        try:
            if not self.options.once:
                self.checker.cap_circuit(self.options.retry_max)  # a recovered registry is noticed within it
            self._reload(force=True)
            history = self.runs.all()
            for settled in self.followed.start(history):  # their triggers are queued again
                self._feed(RunInterrupted(settled.run, settled.stopped, run_again=True))
            if self.commits:
                self.commits.baseline(history)
        except BaseException:
            self._release_lock()
            raise

    def tick(self) -> None:
        now = self.clock()
        self.observer.ticked(self, now)
        while True:  # what came in since the last pass
            try:
                self._take(self.events.get_nowait())
            except queue.Empty:
                break
        self._reload()
        if now >= self._next_foreign_scan:
            self._follow_other_runs(now)
            self._next_foreign_scan = now + self.options.foreign_scan_interval
        if not self.stopping.is_set():  # stopped meanwhile: nothing more is checked, fired or started
            self._feed(Tick(self._commits_due(now)), now)
        if self.view.wants_snapshots:  # a plain log ignores them: do not build 1,000 rows 5 times a second
            self.view.update(self.snapshot())

    def wait(self) -> None:
        """Wait for the next event, at most until something falls due (and a second), and take it in."""
        now = self.clock()
        wake = min(self.scheduler.wake(), now + self.options.foreign_scan_interval)
        if self.commits and not self.options.once:
            wake = min(wake, self.commits.next_time())
        try:
            event = self.events.get(timeout=max(0.0, min(wake - now, 1.0)))
        except queue.Empty:
            return
        self._take(event)

    def close(self) -> None:
        """Stop scheduling, give running builds the grace period, then cancel them (recorded Canceled); then
        let go of the watch lock."""
        try:
            self._feed(Stop())
            deadline = self.clock() + (self.options.grace_period if self.stopping.is_set() else 0.0)
            while self.scheduler.running and self.clock() < deadline:
                self._wait_finished(deadline - self.clock())
            self._feed(GraceOver())
            while self.scheduler.running:
                self._wait_finished(60.0)
            self._pool.shutdown(wait=True)
        finally:
            self._release_lock()

    def _guarded(self, step: Callable[[], None]) -> None:
        """One bad task or file, a full disk or no file descriptors left must not stop the watch of the others:
        the error is logged once (not on every tick while it lasts) and the next tick tries again."""
        try:
            step()
        except (AcrTaskError, OSError) as exc:
            message = f"ERROR: {exc}"
            if message != self._step_error:
                self.view.event(message)
            self._step_error = message
        else:
            if step == self.tick:
                self._step_error = None

    # Events in, decisions out.

    def _take(self, event: Event) -> None:
        """An event from the queue: what the driver itself does with it first, then the scheduler's turn."""
        if isinstance(event, Stop):
            return  # only wakes the loop: the scheduler is told when the loop shuts down
        if isinstance(event, TagsChecked):
            self.observer.checked(event.result, self.scheduler.plan.interests)
        elif isinstance(event, RunFinished):
            self._cancels.pop(event.run.task, None)
            self.observer.finished(event.run)
            self._reload()  # the run recorded the digests it used
        self._feed(event)

    def _feed(self, event: Event, now: float | None = None) -> None:
        for decision in self.scheduler.handle(event, self.clock() if now is None else now):
            self._carry_out(decision)

    def _carry_out(self, decision: Decision) -> None:
        match decision:
            case Say(line):
                self.view.event(line)
            case CheckTags(registry, batch):
                self.checks.start(registry, dict(batch), self.scheduler.plan.interests)
            case QueueRun(task, trigger):
                self._queue(task, trigger)
            case StartRun(run, task):
                cancel = self._cancels[task.name] = threading.Event()
                self._pool.submit(self._execute, run, task, cancel)
            case RecordRefreshes(key, refreshes):
                self._feed(self.taskstate.record(key, refreshes))
            case CancelQueued(run, reason):
                try:
                    self.runs.finish(run, RunStatus.CANCELED, reason)
                except (OSError, StateError) as exc:  # the next watch finds it Queued with our pid gone, and settles it
                    self.view.event(f"ERROR: Could not record run {run.run_id} Canceled: {exc}.")
            case CancelRunning(task_name):
                if (asked := self._cancels.get(task_name)) is not None:
                    asked.set()

    def _queue(self, task: Task, trigger: RunTrigger) -> None:
        try:
            run = self.executor.queue(task, trigger)
        except (OSError, AcrTaskError) as exc:  # disk full, no descriptors, database locked: not started; try later
            self._feed(QueueFailed(task.name, exc))
            return
        self._feed(RunQueued(task.name, run))
        self.observer.queued(task, run)

    def _execute(self, run: Run, task: Task, cancel: threading.Event) -> None:
        try:
            finished = self.executor.execute(run, task, lambda line: None, cancel)
        except Exception as exc:  # a bug in a run, or a full disk, must not take the loop down
            log.exception("run %s crashed", run.run_id)
            error = f"{type(exc).__name__}: {exc}"
            try:
                finished = self.runs.finish(run, RunStatus.ERROR, error)
            except (OSError, StateError):  # not even the record could be written: the loop must still hear of the end
                finished = replace(run, status=RunStatus.ERROR, error=error, finish_time=self.runs.now())
        self.events.put(RunFinished(finished))

    def _wait_finished(self, timeout: float) -> None:
        """While shutting down: only runs ending and lines to log are taken in."""
        try:  # at most a second at a time: the deadline is on the injected clock
            event = self.events.get(timeout=max(0.05, min(timeout, 1.0)))
        except queue.Empty:
            return
        if isinstance(event, RunFinished):
            self._cancels.pop(event.run.task, None)
            self.observer.finished(event.run)
            self._feed(event)
        elif isinstance(event, Note):
            self._feed(event)

    # What the loop reads: the tasks, runs of other processes, branch heads.

    def _reload(self, force: bool = False) -> None:
        """Read what other processes (and this one's builds) changed (taskstate.py)."""
        try:
            event = self.taskstate.everything() if force else self.taskstate.changes()
        except AcrTaskError as exc:  # a damaged or locked database: keep watching with what we had
            self.view.event(f"Could not read the state database: {exc}")
            return
        if isinstance(event, TasksLoaded):
            with collector_paused():  # planning 10,000 tasks makes many objects and no garbage
                self._feed(event)
        elif event is not None:
            self._feed(event)

    def _follow_other_runs(self, now: float) -> None:
        for run in self.followed.pushed(self.scheduler.own_runs):
            self._reload()  # the run recorded its digests
            self._feed(OtherRunPushed(run))
        for settled in self.followed.abandoned(now):
            self._feed(RunInterrupted(settled.run, settled.stopped, run_again=False))

    def _commits_due(self, now: float) -> tuple[CommitSeen, ...]:
        if not self.commits or (self.options.once and self._commits_checked):
            return ()
        self._commits_checked = True  # --once looks at each branch head once
        moved = self.commits.due(self.scheduler.tasks.values(), now)
        return tuple(CommitSeen(name, trigger) for name, trigger in moved)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
