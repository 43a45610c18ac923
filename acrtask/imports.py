"""Imports: the references of `acrtask image import`, and copy tasks.

A copy task (`task create --import SOURCE -t TARGET`) keeps a copy of a public base in your own registry:
its run copies the source to the target by digest (registry/copy.py) instead of building, and records the
source as its one Runtime base-image dependency, at the digest copied. So the normal watch machinery
re-imports it when the source moves, and the tasks built FROM the copy then run, in order, once each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from acrtask import validate
from acrtask.errors import BuildCanceledError, BuildTimeoutError, ValidationError
from acrtask.model import (
    BaseImageDependency,
    BaseImageTrigger,
    DependencyType,
    OutputImage,
    Status,
    Step,
    Task,
    Trigger,
)
from acrtask.notify.endpoints import apply_settings
from acrtask.reference import ImageRef

if TYPE_CHECKING:
    from acrtask.registry.copy import CopyResult
    from acrtask.task_changes import TaskChanges

LogSink = Callable[[str], None]

# TaskChanges fields that only mean something to a build, with the flag that sets each.
_BUILD_ONLY = {
    "context": "-c/--context", "file": "-f/--file", "arguments": "--arg/--secret-arg", "target": "--target",
    "platform": "--platform", "push_enabled": "--no-push", "no_cache": "--no-cache",
    "base_image_trigger_type": "--base-image-trigger-type", "commit_trigger_enabled": "--commit-trigger-enabled",
    "builder": "--builder",
}


class ImageCopier(Protocol):
    def start_copy(self, source: ImageRef, target: ImageRef, *, force: bool = False,
                   log_line: LogSink | None = None) -> Future[CopyResult]: ...


def source_of(text: str) -> ImageRef:
    """`--source` / `--import`: any reference, a tag or a digest (`node:20-alpine` is Docker Hub's)."""
    if not text.strip():
        raise ValidationError("Invalid source '': the source image cannot be empty.",
                              "Give a reference such as docker.io/library/node:20-alpine.")
    return ImageRef.parse(text.strip())


def target_of(source: ImageRef, image: str | None, registry: str | None) -> ImageRef:
    """`-t/--image`: a tag to copy to (a short name goes under `-r`); without it, the source's repository and
    tag under `-r`, as az acr import does."""
    if image is None:
        if registry is None:
            raise ValidationError("the following arguments are required: -t/--image.",
                                  "Name the copy, e.g. -t localhost:5000/base/node:20-alpine (or give -r/--registry "
                                  "to keep the source's repository and tag).")
        if source.tag is None:
            raise ValidationError(f"{source} has no tag to keep.", "Give -t/--image with a tag.")
        image = f"{source.repository}:{source.tag}"
    name = validate.image_name(image, registry)
    if validate.RUN_ID_PLACEHOLDER in name:
        raise ValidationError(f"Invalid image name '{image}': a copy needs a stable tag, not {{{{.Run.ID}}}}.",
                              "Give a tag such as base/node:20-alpine, so that other tasks can build FROM it.")
    target = ImageRef.parse(name)
    if (target.registry, target.repository, target.tag) == (source.registry, source.repository, source.tag) \
            and source.digest is None:
        raise ValidationError(f"{target} is the source itself.", "Give -t another repository or tag.")
    return target


def _build_flags(changes: TaskChanges) -> list[str]:
    return [flag for field, flag in _BUILD_ONLY.items() if getattr(changes, field) is not None]


def new_task(name: str, changes: TaskChanges) -> Task:
    """The copy task `task create -n NAME --import SOURCE -t TARGET [...]` asks for (checked, not stored)."""
    assert changes.import_source is not None
    flags = _build_flags(changes)
    if flags:
        raise ValidationError(f"{', '.join(flags)} cannot be used with --import: a copy task builds nothing.",
                              "Leave them out, or create a build task with -c instead.")
    source = source_of(changes.import_source)
    images = changes.images or ()
    if len(images) != 1:
        raise ValidationError(f"A copy task needs exactly one -t/--image (got {len(images)}).",
                              "Give the copy's name, e.g. -t localhost:5000/base/node:20-alpine.")
    target = target_of(source, images[0], changes.registry)
    timers = validate.schedules(list(changes.schedules)) if changes.schedules else ()
    trigger = Trigger(timers=timers)
    if changes.base_image_trigger_enabled is False:
        trigger = replace(trigger, base_image=replace(trigger.base_image, status=Status.DISABLED))
    if changes.base_image_trigger_enabled is False:
        trigger = replace(trigger, base_image=replace(trigger.base_image, omitted=True))
    trigger = replace(trigger, base_image=_update_trigger(trigger.base_image, changes))
    return Task(name=name, step=Step(context_path="", image_names=(str(target),), import_source=str(source)),
                status=changes.status or Status.ENABLED, trigger=trigger, registry=changes.registry,
                timeout=validate.timeout(changes.timeout) if changes.timeout is not None else 3600)


def updated_task(task: Task, changes: TaskChanges) -> Task:
    """`task update` of a copy task: a new source forgets the old one's recorded digest (run it again)."""
    flags = _build_flags(changes)
    if flags:
        raise ValidationError(f"{', '.join(flags)} cannot be used on the copy task '{task.name}'.",
                              "A copy task takes --import, -t, --status, --timeout and --base-image-trigger-enabled.")
    step = task.step
    source = source_of(changes.import_source if changes.import_source is not None else step.import_source or "")
    if changes.images is not None and len(changes.images) != 1:
        raise ValidationError(f"A copy task needs exactly one -t/--image (got {len(changes.images)}).")
    target = target_of(source, changes.images[0] if changes.images else step.image_names[0],
                       task.registry or changes.registry)
    moved = str(source) != step.import_source
    step = replace(step, import_source=str(source), image_names=(str(target),),
                   base_image_dependencies=None if moved else step.base_image_dependencies)
    base = task.trigger.base_image
    if changes.base_image_trigger_enabled is not None:
        base = replace(base, status=Status.ENABLED if changes.base_image_trigger_enabled else Status.DISABLED)
    base = _update_trigger(base, changes)
    return replace(task, step=step, trigger=replace(task.trigger, base_image=base),
                   status=changes.status or task.status,
                   timeout=validate.timeout(changes.timeout) if changes.timeout is not None else task.timeout)


def _update_trigger(base: BaseImageTrigger, changes: TaskChanges) -> BaseImageTrigger:
    return apply_settings(base, changes.update_trigger_endpoint, changes.update_trigger_payload_type,
                          changes.update_trigger_token)


def refuse_import_on_build_task(task: Task, changes: TaskChanges) -> None:
    if changes.import_source is not None:
        raise ValidationError(f"The task '{task.name}' builds a Dockerfile; --import is only for copy tasks.",
                              "Create a copy task: acrtask task create -n NAME --import SOURCE -t TARGET.")


def run(task: Task, copier: ImageCopier, sink: LogSink, cancel: threading.Event,
        clock: Callable[[], float] = time.monotonic) -> tuple[list[BaseImageDependency], tuple[OutputImage, ...]]:
    """A copy task's run: copy the source by digest to the target (overwriting it: that is the point), and
    return the dependency to record (the source, at the digest copied) and the image pushed."""
    source = ImageRef.parse(task.step.import_source or "")
    target = ImageRef.parse(task.step.image_names[0])
    sink(f"Importing {source} to {target}")
    future = copier.start_copy(source, target, force=True, log_line=sink)
    deadline = clock() + task.timeout
    while True:
        try:
            result = future.result(timeout=0.2)
            break
        except FutureTimeout:
            if cancel.is_set():
                future.cancel()
                raise BuildCanceledError("the copy was canceled") from None
            if clock() >= deadline:
                future.cancel()
                raise BuildTimeoutError(f"the copy took longer than the task's timeout ({task.timeout}s)") from None
    dependency = BaseImageDependency(type=DependencyType.RUNTIME, registry=source.registry,
                                     repository=source.repository, tag=source.tag, digest=result.digest,
                                     pinned=source.is_pinned)
    return [dependency], (OutputImage(target.registry, target.repository, target.tag, result.digest),)
