"""Watch's scheduler: events in, decisions out (events.py), and nothing else.

No clock (the time comes with each event), no files, no threads, no log: the driver (loop.py) feeds it
and carries out what it decides. What it keeps:

- at most one queued run per task: a trigger while one is queued (or being queued, or deferred after
  a failed try) is absorbed by it;
- dependency order: a queued task starts only when none of its upstream tasks is queued or running
  (triggers.ready), so a task waits for its upstream's run and is then triggered by that run's push;
  a diamond builds each task once;
- a base that moves while its task builds is checked again when the build ends (the build may have
  used the old digest), never a second build of the same change beside it;
- a run's push of a watched base checks that base at once, so its dependents run now;
- a triggered run that lost its build endpoint mid-build runs again, once (requeue.py);
- on stop, queued runs are canceled, and after the grace period (GraceOver) running builds too.

The pure parts it is made of: the trigger rules (triggers.py), the tag book (tags.py: when each tag is
checked, with the poll schedules of cadence.py), deferred triggers (retries.py) and timers (schedules.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from acrtask import explain, triggers
from acrtask.errors import AcrTaskError
from acrtask.model import Status, Task
from acrtask.run_record import Run, RunStatus, RunTrigger, TriggerKind
from acrtask.triggers import BaseKey
from acrtask.watch import requeue
from acrtask.watch.cadence import PollSchedule
from acrtask.watch.checks import CheckResult, StalePlatformsError
from acrtask.watch.events import (
    CancelQueued,
    CancelRunning,
    CheckTags,
    Decision,
    Event,
    GraceOver,
    Note,
    OtherRunPushed,
    PushSeen,
    QueueFailed,
    QueueRun,
    RecordRefreshes,
    RefreshesRecorded,
    RunFinished,
    RunInterrupted,
    RunQueued,
    Say,
    StartRun,
    Stop,
    TagsChecked,
    TasksChanged,
    TasksLoaded,
    Tick,
)
from acrtask.watch.options import WatchOptions
from acrtask.watch.payloads import notified_line, watched_pushes
from acrtask.watch.planning import TaskPlan
from acrtask.watch.retries import DeferredTriggers
from acrtask.watch.schedules import TimerSchedule
from acrtask.watch.tags import TagBook
from acrtask.watch.view import Snapshot


@dataclass(frozen=True)
class Queuing:
    """A QueueRun decided, not answered yet: it holds the task's one queued place."""

    trigger: RunTrigger
    key: BaseKey | None  # the base tag that moved, if that was the trigger
    failures: int  # tries that failed before this one
    retry_of: Run | None  # the run that lost its build endpoint, if this queues it again


@dataclass(frozen=True)
class Queued:
    run: Run
    trigger: RunTrigger


@dataclass
class Building:
    run: Run
    recheck: set[BaseKey] = field(default_factory=set)  # tags that moved again while it built


@dataclass(frozen=True)
class Held:
    """The runs a moved tag triggers, held until the refreshes decided beside them are recorded."""

    upstream: str | None
    runs: list[tuple[str, RunTrigger]]


class Scheduler:
    def __init__(self, options: WatchOptions, rng: random.Random | None = None) -> None:
        self.options = options
        cadence = PollSchedule(options.fast_registries, options.fast_interval, (options.poll_min, options.poll_max),
                               rng or random.Random())
        self.tags = TagBook(cadence, retry_first=options.retry_first, retry_cap=options.retry_cap,
                            retry_early=not options.once)
        self.planning = TaskPlan(self.tags, cadence)
        self.timers = TimerSchedule()
        self.deferred = DeferredTriggers(options.retry_first, options.retry_max)
        self.checking: set[str] = set()  # registries with a batch in flight
        self.queuing: dict[str, Queuing] = {}
        self.queued: dict[str, Queued] = {}
        self.running: dict[str, Building] = {}
        self.own_runs: set[str] = set()  # runs this watch queued (runs of other processes are followed)
        self.retries: set[str] = set()  # runs queued again after their endpoint was lost
        self.failed_runs = 0
        self.last_trigger: str | None = None
        self.stopping = False
        self._held: dict[BaseKey, Held] = {}
        self._first_look: set[BaseKey] | None = None  # tags watched at start whose first check is not back yet
        self._watching_told = False

    def handle(self, event: Event, now: float) -> Iterator[Decision]:
        """The decisions `event` leads to, one at a time. Carry each out, and feed back its answer (for a
        QueueRun or RecordRefreshes), before asking for the next: later ones may depend on it (a run that a
        tick queues starts in that tick, if it may)."""
        match event:
            case Tick(commits):
                yield from self._tick(now, [(c.task, c.trigger) for c in commits])
            case TagsChecked(result):
                yield from self._checked(result, now)
            case RunQueued(task, run):
                yield from self._queued(task, run)
            case QueueFailed(task, error):
                yield from self._queue_failed(task, error, now)
            case RunFinished(run):
                yield from self._stopped_run(run) if self.stopping else self._finished(run)
            case TasksLoaded(tasks):
                yield from self._planned(self.planning.load(tasks, now, self._busy()))
            case TasksChanged(changed):
                yield from self._planned(self.planning.change(changed, now, self._busy()))
            case RefreshesRecorded(key, tasks, error):
                yield from self._refreshed(key, tasks, error, now)
            case PushSeen(events):
                keys = watched_pushes(events, self.plan.interests)
                for key in keys:
                    self.tags.due_now.setdefault(key, None)
                if keys:
                    yield Say(notified_line(events, keys))
            case OtherRunPushed(run):
                self._after_push(run)
            case RunInterrupted(run, stopped, run_again):
                yield from self._interrupted(run, stopped, run_again)
            case Note(message):
                yield Say(message)
            case Stop():
                self.stopping = True
                canceled, self.queued = list(self.queued.values()), {}
                for item in canceled:
                    yield CancelQueued(item.run, "watch stopped before it ran")
            case GraceOver():
                for task in list(self.running):
                    yield CancelRunning(task)
            case _:
                raise TypeError(f"not a scheduler event: {event!r}")

    # What the driver and the observers read.

    @property
    def tasks(self) -> dict[str, Task]:
        return self.planning.tasks

    @property
    def plan(self) -> triggers.WatchPlan:
        return self.planning.plan

    def idle(self, now: float) -> bool:
        """Nothing queued, running or being checked, and no tag due: what `--once` waits for."""
        return not (self.queued or self.running or self.checking or self.tags.any_due(now))

    def wake(self) -> float:
        """When something falls due next (a tag, a deferred trigger, a timer), for the driver's wait."""
        wake = min(self.tags.wake(self.checking), self.deferred.next_time())
        return wake if self.options.once else min(wake, self.timers.next_time())

    def picture(self) -> Snapshot:
        """Bases, running and queued runs (the driver adds the build endpoints)."""
        running = tuple((building.run.run_id, task) for task, building in self.running.items())
        return Snapshot(bases=self.tags.statuses(self.plan.interests), running=running,
                        queued=tuple(self.queued), last_trigger=self.last_trigger)

    # Time passing.

    def _tick(self, now: float, commits: list[tuple[str, RunTrigger]]) -> Iterator[Decision]:
        if not (self._watching_told or self._first_look):  # no tag to wait for
            yield from self._first_look_taken()
        for item in self.deferred.due(now):
            yield from self._trigger(item.task, item.trigger, item.key, failures=item.failures)
        for registry, batch in self.tags.due(now, self.plan.interests, self.checking).items():
            self.checking.add(registry)
            yield CheckTags(registry, batch)
        fired = [] if self.options.once else self.timers.due(self.tasks.values(), now)
        for task_name, trigger in fired + commits:
            yield from self._trigger(task_name, trigger)
        yield from self._start_ready()  # worked out only now: what was queued above is in it

    def _first_look_taken(self) -> list[Decision]:
        """Said once every tag watched at start has been checked once (so a push after it is seen as a move)."""
        self._watching_told = True
        return [Say(f"Watching {len(self.plan.interests)} base image tag(s) for {len(self.tasks)} task(s).")]

    def _start_ready(self) -> list[Decision]:
        free = self.options.max_concurrent_runs - len(self.running)
        if self.stopping or free <= 0 or not self.queued:
            return []
        out: list[Decision] = []
        for task_name in triggers.ready(self.queued, set(self.running), self.plan.graph)[:free]:
            item = self.queued.pop(task_name)
            task = self.tasks.get(task_name)
            if task is None:
                out.append(CancelQueued(item.run, "the task was deleted before it ran"))
                continue
            self.running[task_name] = Building(item.run)
            out += [Say(f"Started run {item.run.run_id} of {task_name}."), StartRun(item.run, task)]
        return out

    # Checking tags: a registry's batch came back.

    def _checked(self, result: CheckResult, now: float) -> list[Decision]:
        self.checking.discard(result.registry)
        answered, lines = self.tags.record(result, self.plan.interests, now)
        out: list[Decision] = [Say(line) for line in lines]
        if self._first_look and not self._watching_told:
            self._first_look -= result.upstreams.keys()
            if not self._first_look:
                out += self._first_look_taken()
        for key, digest, upstream in answered:
            out += self._decide(key, digest, upstream, result)
        return out

    def _decide(self, key: BaseKey, digest: str, upstream: str | None, result: CheckResult) -> list[Decision]:
        interests = self.plan.interests.get(key, [])
        if not triggers.changed(interests, digest):
            return []
        try:
            decision = triggers.decide(interests, digest, result.platform_lookup(key), upstream)
        except StalePlatformsError:  # the tasks on the tag changed while it was checked
            self.tags.due_now.setdefault(key, upstream)
            return []
        except Exception as exc:  # the index could not be read: decide at the next check, keep watching
            self.tags.errors[key] = f"moved to {digest[:19]}, but its platform manifests could not be read: {exc}"
            return [Say(f"Check of {key} failed: {self.tags.errors[key]}")]
        out: list[Decision] = [
            Say(f"{key} moved to {digest[:19]} but not for {refresh.task}'s platform: recorded, no run.")
            for refresh in decision.refreshes]
        if decision.refreshes:  # the runs wait for the records: if they cannot be written, the tag is checked again
            self._held[key] = Held(upstream, decision.runs)
            return [*out, RecordRefreshes(key, tuple(decision.refreshes))]
        for task_name, trigger in decision.runs:
            out += self._trigger(task_name, trigger, key)
        return out

    def _refreshed(self, key: BaseKey, tasks: Mapping[str, Task], error: Exception | None,
                   now: float) -> list[Decision]:
        held = self._held.pop(key, Held(None, []))
        out = self._planned(self.planning.change(tasks, now, self._busy())) if tasks else []
        if error is not None:  # e.g. the state could not be written: decide again at the tag's next try
            told = self.tags.failed(key, error, held.upstream, now)
            return out + ([Say(told)] if told is not None else [])
        for task_name, trigger in held.runs:
            out += self._trigger(task_name, trigger, key)
        return out

    # Triggering.

    def _trigger(self, task_name: str, trigger: RunTrigger, key: BaseKey | None = None, failures: int = 0,
                 retry_of: Run | None = None) -> list[Decision]:
        task = self.tasks.get(task_name)
        if task is None:
            return []
        if task_name in self.running and key is not None:
            # The build may have used the old digest: check the tag again when it ends.
            self.running[task_name].recheck.add(key)
            return []
        # A timer or a commit during a build queues one run after it (the build may predate the commit).
        if task_name in self.queued or task_name in self.queuing or task_name in self.deferred:
            return []  # one queued run per task absorbs further triggers
        self.queuing[task_name] = Queuing(trigger, key, failures, retry_of)
        return [QueueRun(task, trigger)]

    def _queued(self, task_name: str, run: Run) -> list[Decision]:
        asked = self.queuing.pop(task_name)
        self.own_runs.add(run.run_id)
        self.queued[task_name] = Queued(run, asked.trigger)
        self.last_trigger = f"{task_name}: {explain.reason(asked.trigger)}"
        out: list[Decision] = [Say(f"Queued run {run.run_id} of {task_name}: {explain.reason(asked.trigger)}")]
        return out + (self._queued_again(asked.retry_of, run) if asked.retry_of else [])

    def _queue_failed(self, task_name: str, error: Exception, now: float) -> list[Decision]:
        asked = self.queuing.pop(task_name)
        failures = asked.failures + 1
        if asked.retry_of is not None:
            self.failed_runs += 1  # the lost run stays a failure
        reason = error.message.rstrip(".") if isinstance(error, AcrTaskError) else str(error)  # not its hint
        why = explain.reason(asked.trigger)
        what = f"ERROR: Could not queue a run of {task_name} ({why}): {reason}. It was not started"
        if self.options.once:  # --once does not wait for the disk: the trigger counts as a failed run
            self.failed_runs += 1
            return [Say(f"{what}; free the disk or raise the open-file limit, and run again.")]
        delay = self.deferred.put(task_name, asked.trigger, asked.key, failures, error, now)
        if failures > 1:
            return []  # one line, not one per try
        return [Say(f"{what}; watch goes on and tries again (first in {delay:.0f}s) until it can. Free the disk "
                    "or raise the open-file limit.")]

    # Runs ending.

    def _finished(self, run: Run) -> list[Decision]:
        building = self.running.pop(run.task, None)
        seconds = round(run.duration_seconds() or 0)
        out: list[Decision] = []
        if run.status is RunStatus.SUCCEEDED:
            out.append(Say(f"Run {run.run_id} of {run.task} succeeded after {seconds}s."))
        else:
            out.append(Say(f"Run {run.run_id} of {run.task} {run.status.value.lower()} after {seconds}s: {run.error}"))
            if requeue.should_requeue(run, ours=run.run_id in self.own_runs, retries=self.retries):
                out += self._requeue(run)
            else:
                self.failed_runs += 1
        for key in building.recheck if building else ():
            if key in self.plan.interests:
                self.tags.due_now.setdefault(key, None)
        self._after_push(run)
        return out

    def _requeue(self, run: Run) -> list[Decision]:
        """A triggered run that lost its build endpoint mid-build: queue it again, once (watch/requeue.py)."""
        asked = self._trigger(run.task, run.trigger, retry_of=run)
        if asked:
            return asked  # told when it is queued
        again = self.queued.get(run.task)  # a trigger during the build queued one already: that one is the retry
        if again is None:
            self.failed_runs += 1
            return []
        return self._queued_again(run, again.run)

    def _queued_again(self, lost: Run, again: Run) -> list[Decision]:
        self.retries.add(again.run_id)
        return [Say(f"Run {lost.run_id} of {lost.task} lost its build endpoint {lost.agent}; queued it again "
                    f"as {again.run_id} (once).")]

    def _stopped_run(self, run: Run) -> list[Decision]:
        self.running.pop(run.task, None)
        # Canceled by our own stop is a clean exit; a build that failed on its own is not.
        if run.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELED):
            self.failed_runs += 1
        return [Say(f"Run {run.run_id} of {run.task} ended {run.status.value} on shutdown.")]

    def _busy(self) -> set[str]:
        return self.queued.keys() | self.running.keys()

    def _after_push(self, run: Run) -> None:
        """A pushed image that other tasks build on: check it at once, so they run now."""
        for image in run.output_images:
            if image.tag is None:  # pushed by digest only: no tag for anyone to build FROM
                continue
            key = replace(image, digest=None)
            if key in self.plan.interests:
                self.tags.due_now[key] = run.run_id

    def _interrupted(self, run: Run, stopped: int, run_again: bool) -> list[Decision]:
        out: list[Decision] = []
        if stopped:
            out.append(Say(f"Stopped {stopped} leftover build process(es) of run {run.run_id}."))
        out.append(Say(f"Run {run.run_id} of {run.task} was interrupted: its process (pid {run.pid}) is gone; "
                       "recorded Error."))
        task = self.tasks.get(run.task)
        # A manual run had the user's one-off arguments, which are gone: it is not re-run blind.
        if not run_again or run.trigger.kind is TriggerKind.MANUAL or task is None or task.status is not Status.ENABLED:
            return out
        out.append(Say(f"Queuing the trigger of interrupted run {run.run_id} of {run.task} again."))
        return out + self._trigger(run.task, run.trigger)

    # The tasks.

    def _planned(self, lines: list[str]) -> list[Decision]:
        """After a new plan: the first one gives the tags to check once before watching is told."""
        if self._first_look is None:
            self._first_look = set(self.plan.interests)
        else:
            self._first_look &= self.plan.interests.keys()
        return [Say(line) for line in lines]
