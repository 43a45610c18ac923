"""Timer triggers (cron, UTC): when they are due, told to the watch loop. Commit triggers, which ask a git
remote, are commits.py's."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from acrtask.model import Status, Task
from acrtask.run_record import RunTrigger, TriggerKind
from acrtask.times import format_time


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
