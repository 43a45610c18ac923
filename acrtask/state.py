"""The state file: one TOML document holding every task, safe under concurrent writers.

Readers never lock: a write is a temporary file renamed into place, so a reader sees either the
old file or the new one, whole. Writers serialise on an exclusive lock on a sibling lock file and
re-read the state under that lock, so two writers never lose each other's changes. A file that
does not parse is reported (with its line) and never overwritten.
"""

from __future__ import annotations

import fcntl
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from acrtask.errors import StateError
from acrtask.files import atomic_write
from acrtask.model import Task

SCHEMA_VERSION = 1


@dataclass
class State:
    """The whole file, loaded. Mutable on purpose: it lives only inside one transaction."""

    tasks: dict[str, Task] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # sections written by later versions we keep as is

    def to_document(self) -> dict[str, Any]:
        return {
            **self.extra,
            "schemaVersion": SCHEMA_VERSION,
            "tasks": {name: task.to_dict(reveal_secrets=True) for name, task in sorted(self.tasks.items())},
        }


def parse_document(document: dict[str, Any], path: Path) -> State:
    version = document.get("schemaVersion", SCHEMA_VERSION)
    if not isinstance(version, int):
        raise StateError(f"State file {path} has a schemaVersion that is not a number.",
                         "Fix the file by hand or move it aside.")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"State file {path} has schema version {version}, newer than this acrtask understands "
            f"({SCHEMA_VERSION}).",
            "Upgrade acrtask, or point ACRTASK_HOME at another folder.",
        )
    tasks: dict[str, Task] = {}
    for name, data in document.get("tasks", {}).items():
        try:
            tasks[name] = Task.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"State file {path} has a malformed task '{name}': {exc!r}.",
                             "Fix the entry by hand or move the file aside; it was left unchanged.") from exc
    extra = {k: v for k, v in document.items() if k not in ("schemaVersion", "tasks")}
    return State(tasks=tasks, extra=extra)


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
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            state = self.load()
            yield state
            self._write(state)
        finally:
            os.close(lock_fd)  # closing releases the lock

    def _write(self, state: State) -> None:
        atomic_write(self.path, tomli_w.dumps(state.to_document()).encode("utf-8"))
