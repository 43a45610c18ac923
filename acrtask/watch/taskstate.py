"""What watch reads and writes of the tasks in the state database, as events for the scheduler.

Reading: all tasks at start, then only what other processes (and this one's builds) changed: nothing
while the database's `data_version` is the same; else only the tasks noted as changed since the last read
(all of them again if those notes are gone). Writing: the new digests of a moved tag under which a task's
platform did not move (a refresh: recorded, no run).
"""

from __future__ import annotations

from dataclasses import replace

from acrtask.errors import AcrTaskError
from acrtask.model import Task
from acrtask.state import StateStore
from acrtask.triggers import BaseKey, Refresh
from acrtask.watch.events import RefreshesRecorded, TasksChanged, TasksLoaded


class TaskState:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._data_version: int | None = None  # of the state database, when the tasks were last read
        self._revision = 0  # the tasks' change revision they were read at

    def everything(self) -> TasksLoaded:
        self._data_version = self.state.data_version()
        return self._snapshot()

    def changes(self) -> TasksLoaded | TasksChanged | None:
        """What changed since the last read; None when nothing did."""
        version = self.state.data_version()
        if version == self._data_version:
            return None
        self._data_version = version
        changes = self.state.changes_since(self._revision)
        if changes is None:
            return self._snapshot()
        self._revision = changes.revision
        return TasksChanged(changes.tasks) if changes.tasks else None

    def record(self, key: BaseKey, refreshes: tuple[Refresh, ...]) -> RefreshesRecorded:
        """Each refresh in a transaction of its own; a write that fails ends it (the tag is decided again)."""
        recorded: dict[str, Task] = {}
        try:
            for refresh in refreshes:
                with self.state.transaction() as tx:
                    task = tx.get(refresh.task)
                    if task is None:
                        continue
                    deps = tuple(replace(d, digest=refresh.digest, platform_digest=refresh.platform_digest)
                                 if d == refresh.old else d for d in task.step.dependencies)
                    tx.record_dependencies(refresh.task, deps, previous=tx.dependencies(refresh.task))
                recorded[refresh.task] = replace(task, step=replace(task.step, base_image_dependencies=deps))
        except (AcrTaskError, OSError) as exc:  # e.g. the disk is full
            return RefreshesRecorded(key, recorded, exc)
        return RefreshesRecorded(key, recorded)

    def _snapshot(self) -> TasksLoaded:
        self._revision, tasks = self.state.snapshot()
        return TasksLoaded({task.name: task for task in tasks})
