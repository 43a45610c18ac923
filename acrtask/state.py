"""The state file: one TOML document holding every task, safe under concurrent writers.

Readers never lock: a write is a temporary file renamed into place, so a reader sees either the
old file or the new one, whole. Writers serialise on an exclusive lock on a sibling lock file and
re-read the state under that lock, so two writers never lose each other's changes. A file that
does not parse is reported (with its line) and never overwritten.

A symlinked state file is written through to its target (the link stays a link), and the lock sits
beside that target, so writers through different links still serialise. Keys this version does not
know, at the top and inside each task, are written back as they were read: a newer acrtask's
fields survive an older one writing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from acrtask.errors import AcrTaskError, StateError
from acrtask.files import atomic_write, real_path, remove_stale_temp_files
from acrtask.model import Task

SCHEMA_VERSION = 1


@dataclass
class State:
    """The whole file, loaded. Mutable on purpose: it lives only inside one transaction."""

    tasks: dict[str, Task] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # sections written by later versions we keep as is
    task_extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # the same, inside each task

    def to_document(self) -> dict[str, Any]:
        return {
            **self.extra,
            "schemaVersion": SCHEMA_VERSION,
            "tasks": {name: with_unknown_keys(task.to_dict(reveal_secrets=True), self.task_extra.get(name, {}))
                      for name, task in sorted(self.tasks.items())},
        }


def unknown_keys(stored: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """What `stored` has that `known` (the same task as this version writes it) lacks, table by table.

    Lists are values as a whole: a list this version writes replaces the stored one.
    """
    extra: dict[str, Any] = {}
    for key, value in stored.items():
        if key not in known:
            extra[key] = value
        elif isinstance(value, dict) and isinstance(known[key], dict):
            nested = unknown_keys(value, known[key])
            if nested:
                extra[key] = nested
    return extra


def with_unknown_keys(known: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`known` with the keys kept by `unknown_keys` put back; what this version writes wins."""
    merged = dict(known)
    for key, value in extra.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = with_unknown_keys(merged[key], value)
    return merged


def _malformed(path: Path, what: str, reason: str) -> StateError:
    return StateError(f"State file {path} has {what}: {reason}.",
                      "Fix it by hand or move it aside; acrtask left it unchanged.")


def _reason(exc: Exception) -> str:
    if isinstance(exc, AcrTaskError):
        return exc.message.rstrip(".")
    if isinstance(exc, KeyError):
        return f"the key {exc} is missing"
    return str(exc)


def parse_document(document: dict[str, Any], path: Path) -> State:
    version = document.get("schemaVersion", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateError(f"State file {path} has a schemaVersion that is not a number.",
                         "Fix the file by hand or move it aside.")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"State file {path} has schema version {version}, newer than this acrtask understands "
            f"({SCHEMA_VERSION}).",
            "Upgrade acrtask, or point ACRTASK_HOME at another folder.",
        )
    stored_tasks = document.get("tasks", {})
    if not isinstance(stored_tasks, dict):
        raise _malformed(path, "'tasks' that is not a table", f"it is a {type(stored_tasks).__name__}")
    tasks: dict[str, Task] = {}
    task_extra: dict[str, dict[str, Any]] = {}
    for name, data in stored_tasks.items():
        try:
            if not isinstance(data, dict):
                raise TypeError(f"it is a {type(data).__name__}, not a table")
            task = Task.from_dict(data)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, AcrTaskError) as exc:
            raise _malformed(path, f"a malformed task {name!r}", _reason(exc)) from exc
        tasks[name] = task
        extra = unknown_keys(data, task.to_dict(reveal_secrets=True))
        if extra:
            task_extra[name] = extra
    extra = {k: v for k, v in document.items() if k not in ("schemaVersion", "tasks")}
    return State(tasks=tasks, extra=extra, task_extra=task_extra)


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> State:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise StateError(f"Cannot read state file {self.path}: {exc.strerror}.",
                             "Check the file's permissions.") from exc
        try:
            document = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"State file {self.path} is corrupt: {exc}.",
                             "Fix it by hand or move it aside; acrtask will not overwrite it.") from exc
        return parse_document(document, self.path)

    @contextmanager
    def transaction(self) -> Iterator[State]:
        """Lock, re-read, let the caller change the state, then write it atomically.

        If the body raises, nothing is written.
        """
        lock_fd = self._lock()
        try:
            state = self.load()
            yield state
            self._write(state)
        finally:
            os.close(lock_fd)  # closing releases the lock

    def _lock(self) -> int:
        """Take the writers' lock beside the real state file (a symlink's target), creating its folder."""
        target = real_path(self.path)
        lock_path = target.with_name(target.name + ".lock")
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._os_error("lock", exc) from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(lock_fd)
            raise self._os_error("lock", exc) from exc
        return lock_fd

    def _write(self, state: State) -> None:
        data = tomli_w.dumps(state.to_document()).encode("utf-8")
        remove_stale_temp_files(self.path)  # left by writers killed mid-write; we hold the lock
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            raise self._os_error("write", exc) from exc

    def _os_error(self, action: str, exc: OSError) -> StateError:
        where = exc.filename or self.path
        todo = _WHAT_TO_DO.get(exc.errno or 0, "Check that folder and its permissions.")
        return StateError(f"Cannot {action} the state file {self.path} ({where}: {exc.strerror or exc}).",
                          f"{todo} The state file was left unchanged.")


_WHAT_TO_DO = {
    errno.ENOSPC: "Free some disk space, then try again.",
    errno.EDQUOT: "Free some disk space (you are over quota), then try again.",
    errno.EACCES: "Make the folder writable for you, or set ACRTASK_HOME to one that is.",
    errno.EPERM: "Make the folder writable for you, or set ACRTASK_HOME to one that is.",
    errno.EROFS: "The disk is read-only: set ACRTASK_HOME to a writable folder.",
    errno.EISDIR: "Move that folder away: acrtask needs a file there.",
    errno.ENOTDIR: "Part of that path is a file, not a folder: move it away or set ACRTASK_HOME.",
}
