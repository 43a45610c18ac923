"""What the CLI calls: task create, update, show, list, delete and timers, over the state database.

Every change is one transaction that touches only that task's rows, and every check runs before
anything is written, so bad input leaves the state exactly as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from acrtask import context as contexts
from acrtask import imports, validate
from acrtask.errors import NotFoundError, ValidationError
from acrtask.memory import collector_paused
from acrtask.model import (
    Argument,
    BaseImageTrigger,
    SourceTrigger,
    Status,
    Step,
    StepType,
    Task,
    TimerTrigger,
    Trigger,
    document_login_server,
    format_time,
)
from acrtask.multistep import tasks as multistep_tasks
from acrtask.multistep.run import NO_CONTEXT
from acrtask.notify.endpoints import apply_settings
from acrtask.reference import names_registry
from acrtask.state import StateStore, documents
from acrtask.task_changes import TaskChanges


def _merge_arguments(old: tuple[Argument, ...], new: tuple[Argument, ...]) -> tuple[Argument, ...]:
    """az's update replaces arguments by name and keeps the others."""
    merged = {arg.name: arg for arg in old}
    merged.update({arg.name: arg for arg in new})
    return tuple(merged.values())


def _source_triggers(ctx: contexts.Context, changes: TaskChanges,
                     existing: tuple[SourceTrigger, ...]) -> tuple[SourceTrigger, ...]:
    enabled = changes.commit_trigger_enabled
    if not ctx.is_git:
        if enabled:
            raise ValidationError("--commit-trigger-enabled needs a git context.",
                                  "Use a git repository or URL as -c, or leave the commit trigger off.")
        return ()
    status = Status.ENABLED if enabled is None or enabled else Status.DISABLED
    if enabled is None and existing:
        status = existing[0].status
    before = existing[0] if existing else SourceTrigger(repository_url=ctx.location, branch=ctx.branch)
    pull_request = before.pull_request if changes.pull_request_trigger_enabled is None \
        else changes.pull_request_trigger_enabled
    return (replace(before, repository_url=ctx.location, branch=ctx.branch, status=status,
                    name=changes.source_trigger_name or before.name, pull_request=pull_request),)


def _multistep(task: Task, changes: TaskChanges, timeout: int) -> tuple[Step, contexts.Context | None]:
    """A multi-step task's step with the flags applied; its context, parsed (None for /dev/null)."""
    step = task.step
    docker_only = {"-t/--image": changes.images, "--target": changes.target, "--no-push": changes.push_enabled,
                   "--no-cache": changes.no_cache}
    given = [flag for flag, value in docker_only.items() if value is not None]
    if given:
        raise ValidationError(f"{given[0]} is for Dockerfile tasks; a task file says what to build, with which "
                              "options, and what to push in its steps.")
    file = changes.file
    if file is not None and not multistep_tasks.is_task_file(file) and step.type is StepType.FILE_TASK:
        raise ValidationError(f"-f {file} is not a task file (.yaml): this task runs a task file.",
                              "Delete the task and create it again to build a Dockerfile.")
    context = changes.context if changes.context is not None else step.context_path
    encoded = step.type is StepType.ENCODED_TASK
    file_text = values_text = None
    if encoded and changes.cmd is None and (file is not None or step.encoded_task_content is None):
        file = file or multistep_tasks.DEFAULT_ENCODED_FILE
        file_text = multistep_tasks.read_local(file, "task file", changes.stdin_text)
    if encoded and changes.values_file is not None:
        values_text = multistep_tasks.read_local(changes.values_file, "values file")
    values = changes.values
    if changes.arguments is not None:  # --arg / --secret-arg: values too, as a task file has no build args
        values = (values or ()) + changes.arguments
    step = multistep_tasks.apply(
        step, context=changes.context, file=file, file_text=file_text, values_file=None if encoded else
        changes.values_file, values_text=values_text, values=values, timeout=timeout, cmd=changes.cmd)
    if context == NO_CONTEXT:
        return step, None
    ctx = contexts.parse(context)
    return replace(step, context_path=_context_path(ctx)), ctx


def _apply(task: Task, changes: TaskChanges) -> Task:
    """The pure part of create and update: a task with the given flags applied and checked."""
    timeout = validate.timeout(changes.timeout) if changes.timeout is not None else task.timeout
    if task.step.is_multistep:
        step, ctx = _multistep(task, changes, timeout)
    else:
        step, ctx = _docker_step(task.step, changes, task.registry or changes.registry)
    if changes.git_access_token is not None:
        step = replace(step, context_access_token=changes.git_access_token or None)
    base = task.trigger.base_image
    if changes.base_image_trigger_enabled is not None:
        base = replace(base, status=Status.ENABLED if changes.base_image_trigger_enabled else Status.DISABLED)
    if changes.base_image_trigger_enabled:
        base = replace(base, omitted=False)
    if changes.base_image_trigger_type is not None:
        base = replace(base, type=changes.base_image_trigger_type)
    if changes.base_image_trigger_name is not None:
        base = replace(base, name=changes.base_image_trigger_name)
    base = apply_settings(base, changes.update_trigger_endpoint, changes.update_trigger_payload_type,
                          changes.update_trigger_token)
    timers = task.trigger.timers
    if changes.schedules is not None:
        timers = validate.schedules(list(changes.schedules), existing=timers)
    sources = task.trigger.sources
    if changes.context is not None or changes.commit_trigger_enabled is not None \
            or changes.pull_request_trigger_enabled is not None or changes.source_trigger_name is not None:
        if ctx is None:
            if changes.commit_trigger_enabled:
                raise ValidationError("--commit-trigger-enabled needs a git context, not /dev/null.")
            sources = ()
        else:
            sources = _source_triggers(ctx, changes, task.trigger.sources)
    trigger = Trigger(base_image=base, timers=timers, sources=sources)

    changed = replace(
        task,
        step=step,
        trigger=trigger,
        platform=changes.platform or task.platform,
        status=changes.status or task.status,
        timeout=timeout,
        builder=changes.builder or task.builder,
        registry=task.registry or changes.registry,  # a task stays in its registry; -r on update is a scope
    )
    if changed.step.type is StepType.ENCODED_TASK:
        # its text is all there is: check it now, in full
        name = "standard input" if changes.file == "-" else changes.file
        multistep_tasks.check(changed, os.environ, None if changes.cmd else name)
    return changed


def _docker_step(step: Step, changes: TaskChanges, registry: str | None) -> tuple[Step, contexts.Context]:
    """A Dockerfile task's step with the flags applied; its context, parsed."""
    context_text = changes.context if changes.context is not None else step.context_path
    if context_text == NO_CONTEXT:
        raise ValidationError("A Dockerfile task needs a context: -c /dev/null is for task files.",
                              "Give -c a folder or git URL, or -f FILE.yaml with -c /dev/null for a task file.")
    if changes.file is not None and multistep_tasks.is_task_file(changes.file):
        raise ValidationError(f"-f {changes.file} is a task file, and this task builds a Dockerfile.",
                              "Delete the task and create it again with -f to run the task file.")
    ctx = contexts.parse(context_text)
    file = changes.file if changes.file is not None else step.docker_file_path
    if changes.context is not None or changes.file is not None:
        contexts.check_dockerfile(ctx, file)
    if changes.cmd is not None or changes.values is not None or changes.values_file is not None:
        raise ValidationError("--cmd, --set, --set-secret and --values are for task files (-f FILE.yaml); this task "
                              "builds a Dockerfile.", "Use --arg and --secret-arg for build arguments.")
    if changes.images is not None:
        step = replace(step, image_names=tuple(_image_name(i, registry) for i in changes.images))
    if changes.arguments is not None:
        step = replace(step, arguments=_merge_arguments(step.arguments, changes.arguments))
    step = replace(
        step,
        context_path=_context_path(ctx),
        docker_file_path=file,
        target=changes.target if changes.target is not None else step.target,
        is_push_enabled=step.is_push_enabled if changes.push_enabled is None else changes.push_enabled,
        no_cache=step.no_cache if changes.no_cache is None else changes.no_cache,
    )
    if step.is_push_enabled and not step.image_names:
        raise ValidationError("A task that pushes needs at least one image name.",
                              "Give -t/--image, or --no-push to build without pushing.")
    return step, ctx


def _image_name(text: str, registry: str | None) -> str:
    """A -t name: checked, and kept short (as az stores it) when the task's registry goes in front of it at run
    time; a name with its own registry, or one starting with a run variable, is kept whole."""
    full = validate.image_name(text, registry)
    first, slash, _ = text.strip().partition("/")
    plain = not names_registry(text.strip()) and not (slash and ("{{" in first or "$" in first))
    return text.strip() if plain and registry else full


def _context_path(ctx: contexts.Context) -> str:
    if ctx.kind is contexts.ContextKind.GIT_URL:
        fragment = ""
        if ctx.branch or ctx.folder:
            fragment = "#" + (ctx.branch or "") + (f":{ctx.folder}" if ctx.folder else "")
        return ctx.location + fragment
    return ctx.location


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
            kind = multistep_tasks.step_type(changes.context, changes.file, changes.cmd)
            draft = Task(name=name, step=Step(context_path=changes.context, type=kind),
                         trigger=Trigger(base_image=BaseImageTrigger()))
            # Unlike update, create always settles the commit trigger (on by default for git contexts).
            task = _apply(draft, replace(changes, file=changes.file or ("Dockerfile" if kind is StepType.DOCKER
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
        kind = multistep_tasks.step_type(changes.context, changes.file, changes.cmd)
        draft = Task(name="", step=Step(context_path=changes.context or NO_CONTEXT, type=kind),
                     trigger=Trigger(base_image=BaseImageTrigger(status=Status.DISABLED)))
        task = _apply(draft, replace(changes, file=changes.file or ("Dockerfile" if kind is StepType.DOCKER else None),
                                     commit_trigger_enabled=False))
        if task.step.type is StepType.FILE_TASK:
            multistep_tasks.check(task, os.environ)
        return task

    def update(self, name: str, changes: TaskChanges) -> Task:
        with self.store.transaction() as tx:
            task = self._get(tx.get, name, changes.registry)
            if task.step.is_import:
                task = imports.updated_task(task, changes)
            else:
                imports.refuse_import_on_build_task(task, changes)
                task = _apply(task, changes)
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


@dataclass(frozen=True)
class RunOverrides:
    """`task run -c -f --target`: this run builds another context, Dockerfile or stage; the task is unchanged."""

    context: str | None = None
    file: str | None = None
    target: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("context", self.context), ("file", self.file), ("target", self.target)) if v}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> RunOverrides:
        return cls(data.get("context"), data.get("file"), data.get("target"))

    def apply(self, task: Task) -> Task:
        """The task as this run builds it, checked as create checks these flags."""
        if not self.to_dict():
            return task
        if task.step.is_import or task.step.is_multistep:
            kind = "a copy task" if task.step.is_import else "a task file's task"
            raise ValidationError(f"The task '{task.name}' is {kind}: -c, -f and --target of a run are for "
                                  "Dockerfile tasks here.", "Run it without them.")
        if self.target is not None:
            validate.stage_name(self.target)
        ctx = contexts.parse(self.context if self.context is not None else task.step.context_path)
        file = self.file if self.file is not None else task.step.docker_file_path
        contexts.check_dockerfile(ctx, file)
        step = replace(task.step, context_path=_context_path(ctx), docker_file_path=file,
                       target=self.target if self.target is not None else task.step.target)
        return replace(task, step=step)
