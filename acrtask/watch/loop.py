"""The watch loop: check base tags, trigger dependent tasks, run them in order, once each.

One thread owns all scheduling state; builds run in worker threads, each registry's checks in a
thread of their own (checks.py), the webhook listener in its own, and all talk to the loop only
through its event queue. Time and randomness are injected, so tests drive the loop without waiting.

Nothing that goes wrong in one step ends the loop: a full disk or no file descriptors left is logged
as one ERROR line and the step (a check, queuing a run) is tried again after a backoff.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from acrtask import triggers
from acrtask.endpoint_status import EndpointStatus
from acrtask.errors import AcrTaskError, StateError
from acrtask.memory import collector_paused
from acrtask.model import Run, RunStatus, RunTrigger, Status, Task, TriggerKind
from acrtask.runs import RunStore
from acrtask.state import StateStore
from acrtask.triggers import BaseKey
from acrtask.watch import requeue
from acrtask.watch.cadence import PollSchedule, pushed_registries
from acrtask.watch.checks import CheckResult, RegistryChecks, StalePlatformsError, TagChecker
from acrtask.watch.followed import FollowedRuns, Settled, hold_watch_lock
from acrtask.watch.observer import Observer, WatchObserver
from acrtask.watch.payloads import PushEvent, notified_line, watched_pushes
from acrtask.watch.retries import DeferredTriggers
from acrtask.watch.schedules import CommitPoller, TimerSchedule
from acrtask.watch.tags import TagBook
from acrtask.watch.view import Snapshot, WatchView

log = logging.getLogger("acrtask.watch")


class RunExecutor(Protocol):
    def queue(self, task: Task, trigger: RunTrigger) -> Run: ...

    def execute(self, run: Run, task: Task, emit: Callable[[str], None], cancel: threading.Event) -> Run: ...


@dataclass(frozen=True)
class WatchOptions:
    poll_min: float = 600.0
    poll_max: float = 3600.0
    max_concurrent_runs: int = 2
    once: bool = False
    commit_poll_interval: float = 60.0
    grace_period: float = 30.0
    foreign_scan_interval: float = 0.2  # how often runs of other processes are looked for
    fast_registries: frozenset[str] = frozenset()  # polled every fast_interval (cadence.py has the rules)
    fast_interval: float = 30.0
    retry_first: float = 5.0  # a failed check or queuing is tried again after this, doubling per failure...
    retry_cap: float = 300.0  # ...up to this, and never more than half the shortest poll interval

    @property
    def retry_max(self) -> float:
        """The longest wait before a failed step is tried again, whatever the registry (and the registries'
        circuit cap): under both poll intervals, so a recovered registry is noticed before its next poll."""
        return min(self.retry_cap, self.poll_min / 2, self.fast_interval / 2)


@dataclass
class _Pending:
    task: str
    trigger: RunTrigger
    run: Run


@dataclass
class _Running:
    run: Run
    cancel: threading.Event
    recheck: set[BaseKey] = field(default_factory=set)  # tags that moved again while it built


class Watcher:
    def __init__(self, state: StateStore, runs: RunStore, checker: TagChecker, executor: RunExecutor,
                 view: WatchView, options: WatchOptions, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, commits: CommitPoller | None = None,
                 observer: WatchObserver | None = None) -> None:
        self.state, self.runs, self.checker, self.executor = state, runs, checker, executor
        self.observer: WatchObserver = observer or Observer()  # metrics, health, notifications (observer.py)
        self.view, self.options, self.clock = view, options, clock
        self.rng = rng or random.Random()
        self.commits = commits
        # SimpleQueue: its put is reentrant, so a signal handler may call stop() at any moment.
        self.events: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.tasks: dict[str, Task] = {}
        self.plan = triggers.WatchPlan()
        self.cadence = PollSchedule(options.fast_registries, options.fast_interval,
                                    (options.poll_min, options.poll_max), self.rng)
        self.tags = TagBook(self.cadence, retry_first=options.retry_first, retry_cap=options.retry_cap,
                            retry_early=not options.once)
        # The book's tables, by their old names (tests and the scale bench read them).
        self.next_check, self.last_check = self.tags.next_check, self.tags.last_check
        self.errors, self.due_now = self.tags.errors, self.tags.due_now
        self.checks = RegistryChecks(checker, lambda result: self.events.put(("checked", result)))
        self.deferred = DeferredTriggers(options.retry_first, options.retry_max)
        self.pending: dict[str, _Pending] = {}
        self.running: dict[str, _Running] = {}
        self.failed_runs = 0
        self.last_trigger: str | None = None
        self.timers = TimerSchedule()
        self._data_version: int | None = None  # of the state database, when the tasks were last read
        self._revision = 0  # the tasks' change revision they were read at
        self._own_runs: set[str] = set()
        self._told_never_run: set[str] = set()
        self.followed = FollowedRuns(runs)
        self._next_foreign_scan = 0.0
        self._watch_lock_fd: int | None = None
        self._commits_checked = False
        self._retries: set[str] = set()  # runs queued again after their endpoint was lost
        self.endpoint_status: Callable[[], tuple[EndpointStatus, ...]] | None = None  # for the live view
        self._step_error: str | None = None  # the last ERROR a loop step logged (told once, not per tick)
        self._pool = ThreadPoolExecutor(max_workers=options.max_concurrent_runs, thread_name_prefix="build")

    # Inputs from other threads.

    def notify_push(self, events: list[PushEvent]) -> None:
        """The push events of one webhook body: handled, and logged, together."""
        self.events.put(("push", tuple(events)))

    def note(self, message: str) -> None:
        """A line for the view from another thread (the build pool's endpoints, notification results)."""
        self.events.put(("note", message))

    def stop(self) -> None:
        self.stopping.set()
        self.events.put(("stop", None))

    def snapshot(self) -> Snapshot:
        """The current picture (bases, running and queued runs); call on the loop's thread (observers)."""
        return self._snapshot()

    # The loop.

    def run(self) -> int:
        """Until stopped (or, with --once, until everything triggered has run).

        Returns the exit code: with --once, 1 if a run failed; a watch stopped by a signal exits 0.
        """
        self.state.db.check_integrity()  # a damaged database is reported before anything is run from it
        self._watch_lock_fd = hold_watch_lock(self.state.path)  # held until the loop ends
        if not self.options.once:
            self.checker.cap_circuit(self.options.retry_max)  # a recovered registry is noticed within it
        self._reload(force=True)
        history = self.runs.all()
        self._recover_interrupted(self.followed.start(history))
        for key in self.plan.interests:
            self.next_check[key] = self.clock()  # the first check compares against the recorded digests
        if self.commits:
            self.commits.baseline(history)
        self.view.event(f"Watching {len(self.plan.interests)} base image tag(s) for {len(self.tasks)} task(s).")
        try:
            while not self.stopping.is_set():
                self._guarded(self.tick)
                if self.options.once and not self.pending and not self.running and not self.checks.busy \
                        and not self.tags.any_due(self.clock()):
                    break
                self._guarded(self._wait)
        finally:
            self.observer.stopping()
            self._shutdown()
            if self._watch_lock_fd is not None:
                os.close(self._watch_lock_fd)
                self._watch_lock_fd = None
        return 1 if self.options.once and self.failed_runs else 0

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

    def tick(self) -> None:
        now = self.clock()
        self.observer.ticked(self, now)
        self._drain_events()
        self._reload()
        for item in self.deferred.due(now):
            self._trigger(item.task, item.trigger, item.key, failures=item.failures)
        if now >= self._next_foreign_scan:
            for run in self.followed.pushed(self._own_runs):
                self._reload()  # the run recorded its digests
                self._after_push(run)
            for settled in self.followed.abandoned(now):
                self._tell_settled(settled)
            self._next_foreign_scan = now + self.options.foreign_scan_interval
        for registry, batch in self.tags.due(now, self.plan.interests, self.checks.busy).items():
            self.checks.start(registry, batch, self.plan.interests)
        if not self.options.once:
            for task_name, trigger in self.timers.due(self.tasks.values(), now):
                self._trigger(task_name, trigger)
        if self.commits and (not self.options.once or not self._commits_checked):
            for task_name, trigger in self.commits.due(self.tasks.values(), now):
                self._trigger(task_name, trigger)
            self._commits_checked = True  # --once looks at each branch head once
        self._start_ready()
        if self.view.wants_snapshots:  # a plain log ignores them: do not build 1,000 rows 5 times a second
            self.view.update(self._snapshot())

    def _wait(self) -> None:
        now = self.clock()
        wake = min(self.tags.wake(self.checks.busy), self.deferred.next_time(),
                   now + self.options.foreign_scan_interval)
        if not self.options.once:
            wake = min(wake, self.timers.next_time(), self.commits.next_time() if self.commits else wake)
        try:
            kind, payload = self.events.get(timeout=max(0.0, min(wake - now, 1.0)))
        except queue.Empty:
            return
        self._handle(kind, payload)

    def _drain_events(self) -> None:
        while True:
            try:
                kind, payload = self.events.get_nowait()
            except queue.Empty:
                return
            self._handle(kind, payload)

    def _handle(self, kind: str, payload: object) -> None:
        if kind == "push" and isinstance(payload, tuple):
            keys = watched_pushes(payload, self.plan.interests)
            for key in keys:
                self.due_now.setdefault(key, None)
            if keys:
                self.view.event(notified_line(payload, keys))
        elif kind == "finished" and isinstance(payload, Run):
            self._finished(payload)
        elif kind == "note":
            self.view.event(str(payload))
        elif kind == "checked" and isinstance(payload, CheckResult):
            self._checked(payload)

    # Checking tags: each registry's batch on its own thread (checks.py); the result comes back as an event.

    def _checked(self, result: CheckResult) -> None:
        self.checks.done(result)
        self.observer.checked(result, self.plan.interests)
        now = self.clock()
        answered, lines = self.tags.record(result, self.plan.interests, now)
        for line in lines:
            self.view.event(line)
        for key, digest, upstream in answered:
            try:
                self._decide(key, digest, upstream, result)
            except (AcrTaskError, OSError) as exc:  # e.g. the state file could not be written: decide again
                if (told := self.tags.failed(key, exc, upstream, now)) is not None:
                    self.view.event(told)

    def _decide(self, key: BaseKey, digest: str, upstream: str | None, result: CheckResult) -> None:
        interests = self.plan.interests.get(key, [])
        if not triggers.changed(interests, digest):
            return
        try:
            decision = triggers.decide(interests, digest, result.platform_lookup(key), upstream)
        except StalePlatformsError:  # the tasks on the tag changed while it was checked
            self.due_now.setdefault(key, upstream)
            return
        except Exception as exc:  # the index could not be read: decide at the next check, keep watching
            self.errors[key] = f"moved to {digest[:19]}, but its platform manifests could not be read: {exc}"
            self.view.event(f"Check of {key} failed: {self.errors[key]}")
            return
        for refresh in decision.refreshes:
            self.view.event(f"{key} moved to {digest[:19]} but not for {refresh.task}'s platform: recorded, no run.")
            self._record_refresh(refresh)
        for task_name, trigger in decision.runs:
            self._trigger(task_name, trigger, key)

    def _record_refresh(self, refresh: triggers.Refresh) -> None:
        with self.state.transaction() as tx:
            task = tx.get(refresh.task)
            if task is None:
                return
            deps = tuple(
                replace(d, digest=refresh.digest, platform_digest=refresh.platform_digest)
                if d == refresh.old else d for d in task.step.dependencies
            )
            tx.record_dependencies(refresh.task, deps, previous=tx.dependencies(refresh.task))
        self._apply({refresh.task: replace(task, step=replace(task.step, base_image_dependencies=deps))})

    # Triggering and running.

    def _trigger(self, task_name: str, trigger: RunTrigger, key: BaseKey | None = None, failures: int = 0) -> None:
        task = self.tasks.get(task_name)
        if task is None:
            return
        if task_name in self.running and key is not None:
            # The build may have used the old digest: check the tag again when it ends.
            self.running[task_name].recheck.add(key)
            return
        # A timer or a commit during a build queues one run after it (the build may predate the commit).
        if task_name in self.pending or task_name in self.deferred:
            return  # one queued run per task absorbs further triggers
        try:
            run = self.executor.queue(task, trigger)
        except (OSError, StateError) as exc:  # disk full, no descriptors, database locked: not started; try later
            self._queue_failed(task_name, trigger, key, failures + 1, exc)
            return
        self._own_runs.add(run.run_id)
        self.pending[task_name] = _Pending(task_name, trigger, run)
        self.last_trigger = f"{task_name}: {trigger.reason()}"
        self.view.event(f"Queued run {run.run_id} of {task_name}: {trigger.reason()}")
        self.observer.queued(task, run)

    def _queue_failed(self, task_name: str, trigger: RunTrigger, key: BaseKey | None, failures: int,
                      error: OSError | StateError) -> None:
        reason = error.message.rstrip(".") if isinstance(error, StateError) else str(error)  # not its hint
        if self.options.once:  # --once does not wait for the disk: the trigger counts as a failed run
            self.failed_runs += 1
            self.view.event(f"ERROR: Could not queue a run of {task_name} ({trigger.reason()}): {reason}. "
                            "It was not started; free the disk or raise the open-file limit, and run again.")
            return
        delay = self.deferred.put(task_name, trigger, key, failures, error, self.clock())
        if failures == 1:  # one line, not one per try
            self.view.event(f"ERROR: Could not queue a run of {task_name} ({trigger.reason()}): {reason}. "
                            "It was not started; watch goes on and tries again (first in "
                            f"{delay:.0f}s) until it can. Free the disk or raise the open-file limit.")

    def _start_ready(self) -> None:
        if self.stopping.is_set():
            return
        free = self.options.max_concurrent_runs - len(self.running)
        if free <= 0 or not self.pending:
            return
        for task_name in triggers.ready(self.pending, set(self.running), self.plan.graph)[:free]:
            item = self.pending.pop(task_name)
            task = self.tasks.get(task_name)
            if task is None:
                self.runs.finish(item.run, RunStatus.CANCELED, "the task was deleted before it ran")
                continue
            cancel = threading.Event()
            self.running[task_name] = _Running(item.run, cancel)
            self.view.event(f"Started run {item.run.run_id} of {task_name}.")
            self._pool.submit(self._execute, item.run, task, cancel)

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
        self.events.put(("finished", finished))

    def _finished(self, run: Run) -> None:
        running = self.running.pop(run.task, None)
        self.observer.finished(run)
        self._reload()  # the run recorded the digests it used
        seconds = round(run.duration_seconds() or 0)
        if run.status is RunStatus.SUCCEEDED:
            self.view.event(f"Run {run.run_id} of {run.task} succeeded after {seconds}s.")
        else:
            self.view.event(f"Run {run.run_id} of {run.task} {run.status.value.lower()} after {seconds}s: {run.error}")
            if not self._requeue_lost(run):
                self.failed_runs += 1
        for key in running.recheck if running else ():
            if key in self.plan.interests:
                self.due_now.setdefault(key, None)
        self._after_push(run)

    def _requeue_lost(self, run: Run) -> bool:
        """A triggered run that lost its build endpoint mid-build: queue it again, once (watch/requeue.py)."""
        if not requeue.should_requeue(run, ours=run.run_id in self._own_runs, retries=self._retries):
            return False
        self._trigger(run.task, run.trigger)
        again = self.pending.get(run.task)
        if again is None:
            return False
        self._retries.add(again.run.run_id)
        self.view.event(f"Run {run.run_id} of {run.task} lost its build endpoint {run.agent}; queued it again "
                        f"as {again.run.run_id} (once).")
        return True

    def _after_push(self, run: Run) -> None:
        """A pushed image that other tasks build on: check it at once, so they run now."""
        for image in run.output_images:
            key = BaseKey(image.registry, image.repository, image.tag or "")
            if key in self.plan.interests:
                self.due_now[key] = run.run_id

    def _recover_interrupted(self, settled: list[Settled]) -> None:
        """Runs left Queued or Running by a process that died before watch started (settled Error by
        FollowedRuns): run their trigger again."""
        for item in settled:
            self._tell_settled(item)
            run, task = item.run, self.tasks.get(item.run.task)
            # A manual run had the user's one-off arguments, which are gone: it is not re-run blind.
            if run.trigger.kind is TriggerKind.MANUAL or task is None or task.status is not Status.ENABLED:
                continue
            self.view.event(f"Queuing the trigger of interrupted run {run.run_id} of {run.task} again.")
            self._trigger(run.task, run.trigger)

    def _tell_settled(self, settled: Settled) -> None:
        run = settled.run
        if settled.stopped:
            self.view.event(f"Stopped {settled.stopped} leftover build process(es) of run {run.run_id}.")
        self.view.event(f"Run {run.run_id} of {run.task} was interrupted: its process (pid {run.pid}) is gone; "
                        "recorded Error.")

    # State.

    def _reload(self, force: bool = False) -> None:
        """Read what other processes (and this one's builds) changed: nothing when the database's
        data_version is the same; else only the tasks noted as changed since the last read."""
        try:
            version = self.state.data_version()
            if not force and version == self._data_version:
                return
            self._data_version = version
            changes = None if force else self.state.changes_since(self._revision)
            if changes is None:
                self._revision, tasks = self.state.snapshot()
                self._replan({task.name: task for task in tasks}, None)
                return
        except AcrTaskError as exc:  # a damaged or locked database: keep watching with what we had
            self.view.event(f"Could not read the state database: {exc}")
            return
        self._revision = changes.revision
        if changes.tasks:
            self._apply(changes.tasks)

    def _apply(self, changed: dict[str, Task | None]) -> None:
        tasks = dict(self.tasks)
        for name, task in changed.items():
            if task is None:
                tasks.pop(name, None)
            else:
                tasks[name] = task
        self._replan(tasks, changed)

    def _replan(self, tasks: dict[str, Task], changed: dict[str, Task | None] | None) -> None:
        old_keys = set(self.plan.interests)
        old_cycles = self.plan.cycles
        before, self.tasks = self.tasks, tasks
        if changed is None:
            with collector_paused():
                self.plan = triggers.plan(tasks.values())
        else:
            self.plan = triggers.replan(self.plan, before, tasks, changed)
        self.tags.watch(self.plan.interests.keys() - old_keys, old_keys - self.plan.interests.keys(), self.clock())
        # Schedules depend on every task's pushes: worked out again only when bases or pushes changed.
        if changed is None or set(self.plan.interests) != old_keys or any(
                pushed_registries([task] if task else []) != pushed_registries([before[name]] if name in before else [])
                for name, task in changed.items()):
            for line in self.cadence.update(self.plan.interests, self.tasks.values(), self.next_check, self.clock()):
                self.view.event(line)
        if self.plan.cycles and (changed is None or self.plan.cycles != old_cycles):
            for group in self.plan.cycles:
                self.view.event(f"Cycle: {' -> '.join(group)} build on each other's images; "
                                "their pushes will not trigger each other.")
        never_run = self.plan.never_run if changed is None else [n for n in self.plan.never_run if n in changed]
        for name in never_run:
            if name not in self.pending and name not in self.running and name not in self._told_never_run:
                self._told_never_run.add(name)
                self.view.event(f"Task {name} has not run yet, so its base images are not known: "
                                f"run it once with 'acrtask task run -n {name}'.")

    def _snapshot(self) -> Snapshot:
        running = tuple((r.run.run_id, t) for t, r in self.running.items())
        endpoints = self.endpoint_status() if self.endpoint_status else ()
        return Snapshot(bases=self.tags.statuses(self.plan.interests), running=running,
                        pending=tuple(self.pending), last_trigger=self.last_trigger, endpoints=endpoints)

    def _shutdown(self) -> None:
        """Stop scheduling, give running builds a grace period, then cancel them (recorded Canceled)."""
        for item in self.pending.values():
            try:
                self.runs.finish(item.run, RunStatus.CANCELED, "watch stopped before it ran")
            except (OSError, StateError) as exc:  # the next watch finds it Queued with our pid gone, and settles it
                self.view.event(f"ERROR: Could not record run {item.run.run_id} Canceled: {exc}.")
        self.pending.clear()
        deadline = time.monotonic() + (0 if not self.stopping.is_set() else self.options.grace_period)
        while self.running and time.monotonic() < deadline:
            self._wait_finished(deadline - time.monotonic())
        for running in self.running.values():
            running.cancel.set()
        while self.running:
            self._wait_finished(60.0)
        self._pool.shutdown(wait=True)

    def _wait_finished(self, timeout: float) -> None:
        try:
            kind, payload = self.events.get(timeout=max(0.05, timeout))
        except queue.Empty:
            return
        if kind == "note" and isinstance(payload, str):
            self.view.event(payload)
        if kind == "finished" and isinstance(payload, Run):
            self.running.pop(payload.task, None)
            self.observer.finished(payload)
            self.view.event(f"Run {payload.run_id} of {payload.task} ended {payload.status.value} on shutdown.")
            # Canceled by our own stop is a clean exit; a build that failed on its own is not.
            if payload.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELED):
                self.failed_runs += 1

