"""TOML, the human format of tasks: reading a state.toml (schema 1) or an exported file, and writing one.

The same checks read the old state file (migration) and `task import` files, and the same shape is
written by `task export`, so an export is a valid state file and the other way round. Files are
checked whole before anything is used: a bad file gets one message with its line number.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from acrtask.errors import AcrTaskError, StateError
from acrtask.model import Task

FILE_SCHEMA_VERSION = 1  # the `schemaVersion` of state.toml and of exported files


@dataclass
class State:
    """A TOML file of tasks, read: the tasks, their documents as written, and unknown sections."""

    tasks: dict[str, Task] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # top-level sections written by a later version


class TaskDocumentError(ValueError):
    """A task entry that cannot be read; `task` names it (None: the `tasks` table itself), so the caller can
    say where it is."""

    def __init__(self, task: str | None, reason: str) -> None:
        super().__init__(reason)
        self.task = task
        self.reason = reason

    @property
    def what(self) -> str:
        return "'tasks' that is not a table" if self.task is None else f"a malformed task {self.task!r}"


class FileProblem(Exception):
    """What is wrong with a TOML file, worded to follow its name: `{path} {problem}`."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, AcrTaskError):
        return exc.message.rstrip(".")
    if isinstance(exc, KeyError):
        return f"the key {exc} is missing"
    return str(exc)


def parse_task(name: str, data: Any) -> Task:
    """A task entry, every field read with its type checked (acrtask.stored)."""
    try:
        if not isinstance(data, dict):
            raise TypeError(f"it is a {type(data).__name__}, not a table")
        return Task.from_dict(data)
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, AcrTaskError) as exc:
        raise TaskDocumentError(name, _reason(exc)) from exc


def parse_tasks(document: dict[str, Any]) -> State:
    """The tasks of a parsed document; raises TaskDocumentError for the first bad one."""
    tasks = document.get("tasks", {})
    if not isinstance(tasks, dict):
        raise TaskDocumentError(None, f"it is a {type(tasks).__name__}")
    state = State(extra={k: v for k, v in document.items() if k not in ("schemaVersion", "tasks")})
    for name, data in tasks.items():
        state.tasks[name] = parse_task(name, data)
        state.documents[name] = data
    return state


def check_version(document: dict[str, Any]) -> None:
    version = document.get("schemaVersion", FILE_SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise FileProblem("has a schemaVersion that is not a number")
    if version > FILE_SCHEMA_VERSION:
        raise FileProblem(f"has schema version {version}, newer than this acrtask understands ({FILE_SCHEMA_VERSION})")


def parse_document(document: dict[str, Any], path: Path) -> State:
    """A state file's document (schema 1), as the state file it was: errors name the file."""
    try:
        check_version(document)
    except FileProblem as exc:
        raise StateError(f"State file {path} {exc}.", "Upgrade acrtask, or fix the file by hand.") from exc
    try:
        return parse_tasks(document)
    except TaskDocumentError as exc:
        raise StateError(f"State file {path} has {exc.what}: {exc.reason}.",
                         "Fix it by hand or move it aside; acrtask left it unchanged.") from exc


def read_text(path: Path) -> tuple[str, dict[str, Any]]:
    """The text of a TOML file and its parsed document; a syntax error says its line (as tomllib does)."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise FileProblem("is a folder, not a file") from None
    except FileNotFoundError:
        raise FileProblem("does not exist") from None
    except OSError as exc:
        raise FileProblem(f"cannot be read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
        return text, tomllib.loads(text)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise FileProblem(f"is not UTF-8 text (line {line})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FileProblem(f"is corrupt: {exc}") from exc


def task_line(text: str, name: str) -> int | None:
    """The line of `[tasks.NAME]` (or the first `[tasks.NAME.…]`), for errors about that task."""
    quoted = rf"(?:{re.escape(name)}|\"{re.escape(name)}\"|'{re.escape(name)}')"
    header = re.compile(rf"^\s*\[\[?\s*tasks\s*\.\s*{quoted}\s*[\].]")
    for number, line in enumerate(text.splitlines(), start=1):
        if header.match(line):
            return number
    for number, line in enumerate(text.splitlines(), start=1):  # an inline table: `name = {...}`
        if re.match(rf"^\s*{quoted}\s*=", line):
            return number
    return None


def dumps(documents: dict[str, dict[str, Any]]) -> str:
    """A file of tasks in state.toml's shape (schema 1), for people and git."""
    return tomli_w.dumps({"schemaVersion": FILE_SCHEMA_VERSION, "tasks": dict(sorted(documents.items()))})
