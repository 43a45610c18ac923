"""The flags of `task create`, `task update`, a quick run and `task run -c -f --target`, applied to a task.

Every check runs here, before anything is stored (service.py stores the result): a task's flags parsed into
`TaskChanges`, then `apply` gives the changed task or raises ValidationError. Reads what the flags name (a
local context's Dockerfile, a task file) but never the state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from acrtask import context as contexts
from acrtask import validate
from acrtask.errors import ValidationError
from acrtask.model import (
    Argument,
    BaseImageTriggerType,
    BuilderName,
    SourceTrigger,
    Status,
    Step,
    StepType,
    Task,
    Trigger,
    UpdateTriggerPayloadType,
)
from acrtask.multistep import kinds
from acrtask.multistep.kinds import NO_CONTEXT
from acrtask.notify.endpoints import apply_settings
from acrtask.platform import Platform
from acrtask.reference import names_registry


@dataclass(frozen=True)
class TaskChanges:
    """Flags of `task create` / `task update`, already parsed. None means "not given"."""

    context: str | None = None
    file: str | None = None
    images: tuple[str, ...] | None = None
    arguments: tuple[Argument, ...] | None = None
    target: str | None = None
    platform: Platform | None = None
    push_enabled: bool | None = None
    no_cache: bool | None = None
    status: Status | None = None
    timeout: int | None = None
    base_image_trigger_enabled: bool | None = None
    base_image_trigger_type: BaseImageTriggerType | None = None
    schedules: tuple[str, ...] | None = None
    commit_trigger_enabled: bool | None = None
    builder: BuilderName | None = None
    registry: str | None = None  # -r as a login server: the task's registry on create ({{.Run.Registry}}), else a scope
    # Multi-step tasks (multistep/tasks.py):
    values: tuple[Argument, ...] | None = None  # --set / --set-secret
    values_file: str | None = None  # --values
    cmd: str | None = None  # --cmd IMAGE ARGS
    stdin_text: str | None = None  # what `-f -` reads
    import_source: str | None = None  # --import: a copy task (imports.py)
    git_access_token: str | None = None  # a secret: used to clone https git contexts
    base_image_trigger_name: str | None = None
    source_trigger_name: str | None = None
    pull_request_trigger_enabled: bool | None = None
    update_trigger_endpoint: str | None = None  # "" clears it (notify/endpoints.py)
    update_trigger_payload_type: UpdateTriggerPayloadType | None = None
    update_trigger_token: str | None = None  # a secret; "" clears it


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
    from acrtask.multistep import tasks as multistep_tasks  # YAML and the executor: loaded for multi-step only

    step = task.step
    docker_only = {"-t/--image": changes.images, "--target": changes.target, "--no-push": changes.push_enabled,
                   "--no-cache": changes.no_cache}
    given = [flag for flag, value in docker_only.items() if value is not None]
    if given:
        raise ValidationError(f"{given[0]} is for Dockerfile tasks; a task file says what to build, with which "
                              "options, and what to push in its steps.")
    file = changes.file
    if file is not None and not kinds.is_task_file(file) and step.type is StepType.FILE_TASK:
        raise ValidationError(f"-f {file} is not a task file (.yaml): this task runs a task file.",
                              "Delete the task and create it again to build a Dockerfile.")
    context = changes.context if changes.context is not None else step.context_path
    encoded = step.type is StepType.ENCODED_TASK
    file_text = values_text = None
    if encoded and changes.cmd is None and (file is not None or step.encoded_task_content is None):
        file = file or kinds.DEFAULT_ENCODED_FILE
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
    return replace(step, context_path=context_path(ctx)), ctx


def apply(task: Task, changes: TaskChanges) -> Task:
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
        from acrtask.multistep import tasks as multistep_tasks

        multistep_tasks.check(changed, os.environ, None if changes.cmd else name)
    return changed


def _docker_step(step: Step, changes: TaskChanges, registry: str | None) -> tuple[Step, contexts.Context]:
    """A Dockerfile task's step with the flags applied; its context, parsed."""
    context_text = changes.context if changes.context is not None else step.context_path
    if context_text == NO_CONTEXT:
        raise ValidationError("A Dockerfile task needs a context: -c /dev/null is for task files.",
                              "Give -c a folder or git URL, or -f FILE.yaml with -c /dev/null for a task file.")
    if changes.file is not None and kinds.is_task_file(changes.file):
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
        context_path=context_path(ctx),
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


def context_path(ctx: contexts.Context) -> str:
    if ctx.kind is contexts.ContextKind.GIT_URL:
        fragment = ""
        if ctx.branch or ctx.folder:
            fragment = "#" + (ctx.branch or "") + (f":{ctx.folder}" if ctx.folder else "")
        return ctx.location + fragment
    return ctx.location


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
        step = replace(task.step, context_path=context_path(ctx), docker_file_path=file,
                       target=self.target if self.target is not None else task.step.target)
        return replace(task, step=step)
