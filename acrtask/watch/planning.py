"""The tasks watch knows and its plan of them (triggers.plan, or triggers.replan for a few changed tasks),
kept beside the tag book: tags that tasks start watching are checked at once, and what a new plan changes
is told once: each registry's poll schedule (cadence.py), cycles, tasks that have not run yet. Pure."""

from __future__ import annotations

from collections.abc import Container, Mapping

from acrtask import triggers
from acrtask.model import Task
from acrtask.watch.cadence import PollSchedule, pushed_registries
from acrtask.watch.tags import TagBook


class TaskPlan:
    def __init__(self, tags: TagBook, cadence: PollSchedule) -> None:
        self.tags, self.cadence = tags, cadence
        self.tasks: dict[str, Task] = {}
        self.plan = triggers.WatchPlan()
        self._told_never_run: set[str] = set()

    def load(self, tasks: Mapping[str, Task], now: float, busy: Container[str]) -> list[str]:
        """Every task, read afresh. `busy`: tasks with a run queued or running (not told they never ran)."""
        return self._replan(dict(tasks), None, now, busy)

    def change(self, changed: Mapping[str, Task | None], now: float, busy: Container[str]) -> list[str]:
        """Only these tasks changed (None: deleted)."""
        tasks = dict(self.tasks)
        for name, task in changed.items():
            if task is None:
                tasks.pop(name, None)
            else:
                tasks[name] = task
        return self._replan(tasks, changed, now, busy)

    def _replan(self, tasks: dict[str, Task], changed: Mapping[str, Task | None] | None, now: float,
                busy: Container[str]) -> list[str]:
        old_keys = set(self.plan.interests)
        old_cycles = self.plan.cycles
        before, self.tasks = self.tasks, tasks
        if changed is None:
            self.plan = triggers.plan(tasks.values())
        else:
            self.plan = triggers.replan(self.plan, before, tasks, changed)
        self.tags.watch(self.plan.interests.keys() - old_keys, old_keys - self.plan.interests.keys(), now)
        lines = []
        # Schedules depend on every task's pushes: worked out again only when bases or pushes changed.
        if changed is None or set(self.plan.interests) != old_keys or any(
                pushed_registries([task] if task else []) != pushed_registries([before[name]] if name in before else [])
                for name, task in changed.items()):
            lines += self.cadence.update(self.plan.interests, self.tasks.values(), self.tags.next_check, now)
        if self.plan.cycles and (changed is None or self.plan.cycles != old_cycles):
            lines += [f"Cycle: {' -> '.join(group)} build on each other's images; their pushes will not trigger "
                      "each other." for group in self.plan.cycles]
        never_run = self.plan.never_run if changed is None else [n for n in self.plan.never_run if n in changed]
        for name in never_run:
            if name not in busy and name not in self._told_never_run:
                self._told_never_run.add(name)
                lines.append(f"Task {name} has not run yet, so its base images are not known: "
                             f"run it once with 'acrtask task run -n {name}'.")
        return lines
