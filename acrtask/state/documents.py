"""Stored task documents: what a task is stored as, and keeping the keys this version does not know.

A task is stored as its az JSON shape (secrets included), exactly as `Task.to_dict` makes it, with its
recorded dependencies split off into their own rows. Keys this version does not know (written by a
newer acrtask, or in an imported file) are stored beside it, as `extra`, at the depth they were found:
carried over into every document this version writes in its place, put back on export, never shown
as if this version knew them. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from acrtask.dependency import BaseImageDependency
from acrtask.model import Task

DEPENDENCIES = "baseImageDependencies"


def split(document: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """(the task without its dependencies, the dependencies or None if never recorded)."""
    step = dict(document.get("step") or {})
    dependencies = step.pop(DEPENDENCIES, None)
    return {**document, "step": step}, dependencies


def join(document: dict[str, Any], dependencies: list[dict[str, Any]] | None) -> dict[str, Any]:
    if dependencies is None:
        return document
    return {**document, "step": {**document.get("step", {}), DEPENDENCIES: dependencies}}


def task_document(task: Task, previous: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """What to store for `task`: (its shape without dependencies, the keys of `previous` it does not know)."""
    document, _ = split(task.to_dict(reveal_secrets=True))
    if previous is None:
        return document, None
    known, _ = split(Task.from_dict(previous).to_dict(reveal_secrets=True))
    return document, unknown(split(previous)[0], known)


def dependency_document(dependency: BaseImageDependency,
                        previous: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    document = dependency.to_dict()
    if previous is None:
        return document, None
    return document, unknown(previous, BaseImageDependency.from_dict(previous).to_dict())


SECRET_LISTS = ("arguments", "values")  # a step's build arguments; a multi-step task's --set/--set-secret values
UPDATE_TRIGGER_TOKEN = "updateTriggerToken"  # in trigger.baseImageTrigger: shown as set, never by value


def without_secret_values(document: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The document as users see it (`Task.to_dict()`: secret values left out), and how many were."""
    step = document.get("step", {})
    base = document.get("trigger", {}).get("baseImageTrigger", {})
    count = sum(1 for key in SECRET_LISTS for item in step.get(key, ()) if item.get("isSecret") and "value" in item)
    count += UPDATE_TRIGGER_TOKEN in base
    if not count:
        return document, 0
    hidden = {key: [{k: v for k, v in item.items() if not (k == "value" and item.get("isSecret"))}
                    for item in step[key]] for key in SECRET_LISTS if key in step}
    shown = {**document, "step": {**step, **hidden}}
    if UPDATE_TRIGGER_TOKEN in base:
        trigger = document["trigger"]
        shown["trigger"] = {**trigger, "baseImageTrigger": {k: v for k, v in base.items() if k != UPDATE_TRIGGER_TOKEN}}
    return shown, count


def unknown(document: Any, known: Any) -> Any:
    """The parts of `document` missing from `known` (what this version made of it), same nesting.

    Dicts are compared key by key; lists of dicts element by element (by "name" when every element
    has one, else by position), so a newer field inside a timer or a dependency is kept too. Returns
    None when nothing is unknown. JSON-safe: list positions are kept under "__items__" as strings."""
    if isinstance(document, dict) and isinstance(known, dict):
        found = {}
        for key, value in document.items():
            if key not in known:
                found[key] = value
            else:
                inner = unknown(value, known[key])
                if inner is not None:
                    found[key] = inner
        return found or None
    if isinstance(document, list) and isinstance(known, list):
        pairs = _pair(document, known)
        found_list = [(key, unknown(old, new)) for key, old, new in pairs]
        kept = {str(key): inner for key, inner in found_list if inner is not None}
        return {"__items__": kept} if kept else None
    return None


def overlay(document: Any, extra: Any) -> Any:
    """`document` with the unknown parts `extra` (from `unknown`) put back where they were."""
    if extra is None:
        return document
    if isinstance(document, dict) and isinstance(extra, dict):
        merged = dict(document)
        for key, value in extra.items():
            merged[key] = overlay(document[key], value) if key in document else value
        return merged
    if isinstance(document, list) and isinstance(extra, dict) and "__items__" in extra:
        by_key = extra["__items__"]
        return [overlay(item, by_key[str(key)]) if str(key) in by_key else item for key, item in _keys(document)]
    return document


def _keys(items: list[Any]) -> list[tuple[Any, Any]]:
    named = items and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)
    return [((i["name"] if named else n), i) for n, i in enumerate(items)]


def _pair(old: list[Any], new: list[Any]) -> list[tuple[Any, Any, Any]]:
    new_by_key = dict(_keys(new))
    return [(key, item, new_by_key[key]) for key, item in _keys(old) if key in new_by_key]
