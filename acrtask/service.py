"""What the CLI calls: task create, update, show, list, delete and timers, over the state database.

Every change is one transaction that touches only that task's rows, and every check runs before
anything is written (the flags are checked and applied by task_changes.py), so bad input leaves the
state exactly as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from acrtask import imports, validate
from acrtask.errors import NotFoundError, ValidationError
from acrtask.memory import collector_paused
from acrtask.model import (
    BaseImageTrigger,
    Status,
    Step,
    StepType,
    Task,
    TimerTrigger,
    Trigger,
    document_login_server,
)
from acrtask.multistep import kinds
from acrtask.multistep.kinds import NO_CONTEXT
from acrtask.state import StateStore, documents
from acrtask.task_changes import TaskChanges, apply
from acrtask.times import format_time


def in_registry(task: Task, registry: str | None) -> bool:
    """Whether -r `registry` (a login server, or None for no scope) covers the task, as az scopes by registry.

    A task that belongs to no registry (no -r, no qualified image) is outside every -r."""
    return registry is None or (task.login_server or "").lower() == registry.lower()


class TaskService:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def create(self, name: str, changes: TaskChanges) -> Task:
        validate.task_name(name)
        if changes.context is None and changes.cmd is not None:
            changes = replace(changes, context=NO_CONTEXT)  # az: --cmd myCommand -c /dev/null
        if changes.import_source is not None:
            task = imports.new_task(name, changes)
        elif changes.context is None:
            raise ValidationError("the following arguments are required: -c/--context (or --import for a copy task).")
        else:
            kind = kinds.step_type(changes.context, changes.file, changes.cmd)
            draft = Task(name=name, step=Step(context_path=changes.context, type=kind),
                         trigger=Trigger(base_image=BaseImageTrigger()))
            # Unlike update, create always settles the commit trigger (on by default for git contexts).
            task = apply(draft, replace(changes, file=changes.file or ("Dockerfile" if kind is StepType.DOCKER
                                                                        else None)))
        if changes.base_image_trigger_enabled is False:  # az creates no trigger at all; shown as null
            task = replace(task, trigger=replace(task.trigger, base_image=replace(
                task.trigger.base_image, status=Status.DISABLED, omitted=True)))
        with self.store.transaction() as tx:
            if tx.exists(name):
                raise ValidationError(f"The task '{name}' already exists.",
                                      f"Use 'acrtask task update -n {name}' to change it.")
            task = replace(task, creation_date=format_time(datetime.now(UTC)))
            tx.put(task)
        return task

    def quick(self, changes: TaskChanges) -> Task:
        """The task of a quick run (`acrtask build`, `acrtask run`): checked as `task create` checks it (a local
        task file read and checked in full), never stored; it has no name and no triggers."""
        kind = kinds.step_type(changes.context, changes.file, changes.cmd)
        draft = Task(name="", step=Step(context_path=changes.context or NO_CONTEXT, type=kind),
                     trigger=Trigger(base_image=BaseImageTrigger(status=Status.DISABLED)))
        task = apply(draft, replace(changes, file=changes.file or ("Dockerfile" if kind is StepType.DOCKER else None),
                                     commit_trigger_enabled=False))
        if task.step.type is StepType.FILE_TASK:
            from acrtask.multistep import tasks as multistep_tasks  # YAML and the executor: multi-step only

            multistep_tasks.check(task, os.environ)
        return task

    def update(self, name: str, changes: TaskChanges) -> Task:
        with self.store.transaction() as tx:
            task = self._get(tx.get, name, changes.registry)
            if task.step.is_import:
                task = imports.updated_task(task, changes)
            else:
                imports.refuse_import_on_build_task(task, changes)
                task = apply(task, changes)
            tx.put(task)
        return task

    def show(self, name: str, registry: str | None = None) -> Task:
        return self._get(self.store.get, name, registry)

    def all(self, registry: str | None = None) -> list[Task]:
        return [task for task in self.store.all() if in_registry(task, registry)]

    def shown(self, name: str | None = None, registry: str | None = None,
              reveal: bool = False) -> list[dict[str, Any]]:
        """Tasks as stored (az's JSON shape), by name, secret values left out unless `reveal`: straight from the
        stored documents, so listing thousands of tasks builds no Task objects. `registry` scopes them (-r)."""
        found = self.store.documents([name] if name is not None else None)
        if registry is not None:
            found = {key: doc for key, doc in found.items() if _document_in_registry(doc, registry)}
        if name is not None and name not in found:
            raise _not_found(name, registry)
        with collector_paused():
            return [found[key] if reveal else documents.without_secret_values(found[key])[0] for key in sorted(found)]

    def ensure_exists(self, name: str, registry: str | None = None) -> None:
        """Raise NotFoundError unless the task is there (without reading it: a malformed one can be deleted)."""
        if registry is not None:
            self.show(name, registry)
        elif not self.store.exists(name):
            raise _not_found(name)

    def delete(self, name: str, registry: str | None = None) -> None:
        with self.store.transaction() as tx:
            if registry is not None:
                self._get(tx.get, name, registry)
            if not tx.delete(name):
                raise _not_found(name)

    def change(self, name: str, registry: str | None, edit: Callable[[Task], Task]) -> Task:
        """Apply `edit` to one task inside a transaction: nothing is written if it raises."""
        with self.store.transaction() as tx:
            task = edit(self._get(tx.get, name, registry))
            tx.put(task)
        return task

    # Timers: az's `task timer add|update|remove|list`. Like az, the changes return the whole task.

    def timer_add(self, name: str, timer_name: str, schedule: str, enabled: bool = True,
                  registry: str | None = None) -> Task:
        validate.timer_name(timer_name)

        def add(task: Task) -> Task:
            if any(t.name == timer_name for t in task.trigger.timers):
                raise ValidationError(f"The timer '{timer_name}' already exists for the task '{name}'.",
                                      "Use 'acrtask task timer update' to change it.")
            timers = validate.schedules([f"{timer_name}:{schedule}"], existing=task.trigger.timers)
            timers = timers[:-1] + (replace(timers[-1], status=Status.ENABLED if enabled else Status.DISABLED),)
            return replace(task, trigger=replace(task.trigger, timers=timers))

        return self.change(name, registry, add)

    def timer_update(self, name: str, timer_name: str, schedule: str | None,
                     enabled: bool | None, registry: str | None = None) -> Task:
        if schedule is None and enabled is None:
            raise ValidationError("Nothing to update.", "Give --schedule and/or --enabled.")

        def update(task: Task) -> Task:
            timer = self._timer(task, timer_name)
            changed = replace(
                timer,
                schedule=validate.cron(schedule) if schedule is not None else timer.schedule,
                status=timer.status if enabled is None else (Status.ENABLED if enabled else Status.DISABLED),
            )
            timers = tuple(changed if t.name == timer_name else t for t in task.trigger.timers)
            return replace(task, trigger=replace(task.trigger, timers=timers))

        return self.change(name, registry, update)

    def timer_remove(self, name: str, timer_name: str, registry: str | None = None) -> Task:
        def remove(task: Task) -> Task:
            self._timer(task, timer_name)
            timers = tuple(t for t in task.trigger.timers if t.name != timer_name)
            return replace(task, trigger=replace(task.trigger, timers=timers))

        return self.change(name, registry, remove)

    def timer_list(self, name: str, registry: str | None = None) -> tuple[TimerTrigger, ...]:
        return self.show(name, registry).trigger.timers

    @staticmethod
    def _get(lookup: Callable[[str], Task | None], name: str, registry: str | None = None) -> Task:
        task = lookup(name)
        if task is None or not in_registry(task, registry):
            raise _not_found(name, registry)
        return task

    @staticmethod
    def _timer(task: Task, timer_name: str) -> TimerTrigger:
        if not task.trigger.timers:
            raise NotFoundError(f"No timer triggers exist for the task '{task.name}'.")
        for timer in task.trigger.timers:
            if timer.name == timer_name:
                return timer
        raise NotFoundError(f"The timer '{timer_name}' does not exist for the task '{task.name}'.")


def _not_found(name: str, registry: str | None = None) -> NotFoundError:
    where = f" in the registry {registry}" if registry else ""
    return NotFoundError(f"The task '{name}' could not be found{where}.",
                         "Run 'acrtask task list' to see the tasks there are.")


def _document_in_registry(document: dict[str, Any], registry: str) -> bool:
    return (document_login_server(document) or "").lower() == registry.lower()
