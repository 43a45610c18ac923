"""`task export` and `task import`: task definitions as TOML, for backups and for keeping tasks in git.

An exported file has state.toml's shape (schema 1), so it is read by the same checks. Import is all
or nothing: the whole file is checked first (a bad entry is reported with its line), then every task
is written in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acrtask import validate
from acrtask.errors import AcrTaskError, NotFoundError, ValidationError
from acrtask.model import Argument, Task
from acrtask.state import StateStore, TaskTransaction, documents, toml_io
from acrtask.times import format_time

_NOTHING = "Fix the file; nothing was imported."


@dataclass(frozen=True)
class Export:
    text: str
    secrets_left_out: int  # secret build-arg values not written (without --with-secrets)


def export(store: StateStore, name: str | None, with_dependencies: bool, with_secrets: bool) -> Export:
    stored = store.documents([name] if name is not None else None, unknown_keys=True)
    if name is not None and name not in stored:
        raise NotFoundError(f"The task '{name}' could not be found.",
                            "Run 'acrtask task list' to see the tasks there are.")
    left_out = 0
    written = {}
    for task_name, document in stored.items():
        if not with_dependencies:
            document = documents.split(document)[0]
        if not with_secrets:
            document, count = documents.without_secret_values(document)
            left_out += count
        written[task_name] = document
    return Export(toml_io.dumps(written), left_out)


@dataclass(frozen=True)
class Imported:
    name: str
    action: str  # "create" or "replace"

    def to_dict(self, applied: bool) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "applied": applied}


def import_file(store: StateStore, path: Path, replace_existing: bool, dry_run: bool) -> list[Imported]:
    text, state = _read(path)
    if dry_run:
        return [_plan(store.exists(name), name, replace_existing, text, path) for name in state.tasks]
    with store.transaction() as tx:
        planned = [_plan(tx.exists(name), name, replace_existing, text, path) for name in state.tasks]
        for item in planned:
            _write(tx, state.tasks[item.name], state.documents[item.name], item.action == "replace")
    return planned


def _read(path: Path) -> tuple[str, toml_io.State]:
    try:
        text, document = toml_io.read_text(path)
        toml_io.check_version(document)
    except toml_io.FileProblem as exc:
        raise ValidationError(f"{path} {exc}.", _NOTHING) from exc
    try:
        state = toml_io.parse_tasks(document)
        for name, task in state.tasks.items():
            _check(name, task)
    except toml_io.TaskDocumentError as exc:
        if exc.task is None:
            raise ValidationError(f"{path} has {exc.what}: {exc.reason}.", _NOTHING) from exc
        line = toml_io.task_line(text, exc.task)
        raise ValidationError(f"{path}{f' line {line}' if line else ''}: task '{exc.task}': {exc.reason}.",
                              _NOTHING) from exc
    if not state.tasks:
        raise ValidationError(f"{path} holds no tasks.", "Give a file written by 'acrtask task export'.")
    return text, state


def _check(name: str, task: Task) -> None:
    """What create and update check, so an imported task is one they could have made."""
    try:
        validate.task_name(name)
        if task.name != name:
            raise ValidationError(f"its name is '{task.name}', not '{name}'")
        validate.timeout(task.timeout)
        for timer in task.trigger.timers:
            validate.cron(timer.schedule)
        for image in task.step.image_names:
            validate.image_name(image, None)
    except AcrTaskError as exc:
        raise toml_io.TaskDocumentError(name, exc.message.rstrip(".")) from exc


def _plan(exists: bool, name: str, replace_existing: bool, text: str, path: Path) -> Imported:
    if exists and not replace_existing:
        line = toml_io.task_line(text, name)
        raise ValidationError(f"{path}{f' line {line}' if line else ''}: the task '{name}' already exists.",
                              "Pass --replace to replace existing tasks; nothing was imported.")
    return Imported(name, "replace" if exists else "create")


def _write(tx: TaskTransaction, task: Task, document: dict[str, Any], existing: bool) -> None:
    if existing:
        task = _keep_secret_values(task, tx, document)
    if not task.creation_date:
        task = replace(task, creation_date=format_time(datetime.now(UTC)))
    tx.put(task, previous=_without_derived(document))
    if task.step.base_image_dependencies is not None:  # an export --with-dependencies
        tx.record_dependencies(task.name, task.step.base_image_dependencies,
                               previous=documents.split(document)[1] or [])


def _without_derived(document: dict[str, Any]) -> dict[str, Any]:
    """The file's document less what `to_dict` derives (a token's "is set" flag), so it is not kept as a key this
    version does not know when the token itself did not come along."""
    base = document.get("trigger", {}).get("baseImageTrigger")
    if not isinstance(base, dict) or "isUpdateTriggerTokenSet" not in base:
        return document
    trigger = {**document["trigger"], "baseImageTrigger": {k: v for k, v in base.items()
                                                           if k != "isUpdateTriggerTokenSet"}}
    return {**document, "trigger": trigger}


def _keep_secret_values(task: Task, tx: TaskTransaction, document: dict[str, Any]) -> Task:
    """A secret argument, value or update-trigger token exported without its value keeps the one the existing
    task has."""
    base = task.trigger.base_image
    token_left_out = base.update_trigger_token is None and document.get("trigger", {}).get(
        "baseImageTrigger", {}).get("isUpdateTriggerTokenSet")
    if not token_left_out and not any(item.is_secret and item.value is None
                                       for item in task.step.arguments + task.step.values):
        return task
    try:
        current = tx.get(task.name)
    except AcrTaskError:  # a malformed stored task is being replaced: nothing to keep from it
        return task
    if current is None:
        return task

    def kept(items: tuple[Argument, ...], stored: tuple[Argument, ...]) -> tuple[Argument, ...]:
        values = {item.name: item.value for item in stored if item.is_secret}
        return tuple(Argument(item.name, values.get(item.name), True) if item.is_secret and item.value is None
                     else item for item in items)

    if token_left_out:
        base = replace(base, update_trigger_token=current.trigger.base_image.update_trigger_token)
    return replace(task, step=replace(task.step, arguments=kept(task.step.arguments, current.step.arguments),
                                      values=kept(task.step.values, current.step.values)),
                   trigger=replace(task.trigger, base_image=base))
