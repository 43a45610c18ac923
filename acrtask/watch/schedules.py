"""Timer (cron, UTC) and commit triggers: when they are due, told to the watch loop."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from acrtask import context as contexts
from acrtask.model import Status, Task
from acrtask.run_record import Run, RunTrigger, TriggerKind
from acrtask.times import format_time

log = logging.getLogger("acrtask.watch")


def next_fire(schedule: str, after: float) -> float:
    from cronsim import CronSim

    start = datetime.fromtimestamp(after, UTC).replace(tzinfo=None)
    # cronsim works on naive datetimes; schedules are UTC, as in ACR.
    return next(CronSim(schedule, start)).replace(tzinfo=UTC).timestamp()


class TimerSchedule:
    def __init__(self) -> None:
        self._next: dict[tuple[str, str, str], float] = {}

    def due(self, tasks: Iterable[Task], now: float) -> list[tuple[str, RunTrigger]]:
        fired = []
        live = set()
        for task in tasks:
            if task.status is not Status.ENABLED:
                continue
            for timer in task.trigger.timers:
                if timer.status is not Status.ENABLED:
                    continue
                key = (task.name, timer.name, timer.schedule)
                live.add(key)
                at = self._next.get(key)
                if at is None:  # cron arithmetic only when a timer is new, not on every tick
                    at = self._next[key] = next_fire(timer.schedule, now)
                if at <= now:
                    occurrence = format_time(datetime.fromtimestamp(at, UTC))
                    fired.append((task.name, RunTrigger(kind=TriggerKind.TIMER, timer_name=timer.name,
                                                        schedule_occurrence=occurrence)))
                    self._next[key] = next_fire(timer.schedule, now)
        for key in set(self._next) - live:  # removed or disabled timers
            del self._next[key]
        return fired

    def next_time(self) -> float:
        return min(self._next.values(), default=math.inf)


LsRemote = Callable[..., str]  # (location, branch, token=...) -> the branch head's commit


class CommitPoller:
    """Polls each git context's branch head; a new commit runs the task (once per new head)."""

    def __init__(self, ls_remote: LsRemote, interval: float) -> None:
        self.ls_remote = ls_remote
        self.interval = interval
        self._known: dict[str, str | None] = {}
        self._next = 0.0

    def baseline(self, history: Iterable[Run]) -> None:
        """Start from the commit each task last built, so commits made while watch was down still run.

        `history` is newest first, as RunStore.all() gives it."""
        for run in reversed(list(history)):
            if run.commit_id:
                self._known[run.task] = run.commit_id

    def due(self, tasks: Iterable[Task], now: float) -> list[tuple[str, RunTrigger]]:
        if now < self._next:
            return []
        self._next = now + self.interval
        fired = []
        for task in tasks:
            source = next((s for s in task.trigger.sources if s.status is Status.ENABLED), None)
            if task.status is not Status.ENABLED or source is None:
                continue
            try:
                ctx = contexts.parse(task.step.context_path)
                token = task.step.context_access_token  # --git-access-token, for an https context
                head = self.ls_remote(ctx.location, ctx.branch, **({"token": token} if token else {}))
            except Exception as exc:  # an unreachable remote must not stop the loop
                log.warning("Could not read the branch head of task %s: %s", task.name, exc)
                continue
            known = self._known.get(task.name)
            self._known[task.name] = head
            if known is not None and known != head:
                fired.append((task.name, RunTrigger(kind=TriggerKind.COMMIT, commit_id=head)))
        return fired

    def next_time(self) -> float:
        return self._next
