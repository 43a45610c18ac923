"""Tasks and their recorded base-image dependencies, in the state database.

Every operation touches only the rows of the tasks it names: showing one task reads one row and its
dependencies, recording a run's dependencies rewrites that task's dependency rows, and "which tasks
build on this base" is a lookup in the dependencies' index. Every write also notes the task's name in
`task_changes`, so a watch reloads just the tasks that changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acrtask.dependency import BaseImageDependency
from acrtask.errors import StateError
from acrtask.memory import collector_paused
from acrtask.model import Task
from acrtask.state import documents
from acrtask.state.db import Database

KEEP_CHANGES = 10_000  # change notes kept (and up to PRUNE_EVERY more); a reader further behind reloads every task
PRUNE_EVERY = 100
_CHUNK = 500  # names per `IN (...)`, well under SQLite's variable limit


def _json(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _dumps(extra: Any) -> str | None:
    return None if extra is None else _json(extra)


def _loads(extra: str | None) -> Any:
    return None if extra is None else json.loads(extra)


@dataclass(frozen=True)
class ChangedTasks:
    """What changed since a revision: each changed task as it is now, None if it was deleted."""

    revision: int
    tasks: dict[str, Task | None]


class TaskTransaction:
    """The tasks as seen inside one write transaction."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None) -> None:
        self.conn = conn
        self.path = path

    def get(self, name: str) -> Task | None:
        return load_tasks(self.conn, [name], self.path).get(name)

    def exists(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM tasks WHERE name = ?", (name,)).fetchone() is not None

    def put(self, task: Task, previous: dict[str, Any] | None = None) -> None:
        """Store the task's definition (not its dependencies), keeping the keys of `previous` (by default,
        of what is stored now) that this version does not know."""
        if previous is None:
            row = self.conn.execute("SELECT document, extra FROM tasks WHERE name = ?", (task.name,)).fetchone()
            previous = documents.overlay(json.loads(row[0]), _loads(row[1])) if row else None
        document, extra = documents.task_document(task, previous)
        self.conn.execute("INSERT INTO tasks(name, document, extra) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE "
                          "SET document = excluded.document, extra = excluded.extra",
                          (task.name, _json(document), _dumps(extra)))
        self._changed(task.name)

    def save(self, task: Task) -> None:
        """The definition and, if the task has them, its recorded dependencies (a whole task, as loaded)."""
        self.put(task)
        if task.step.base_image_dependencies is not None:
            self.record_dependencies(task.name, task.step.base_image_dependencies)

    def delete(self, name: str) -> bool:
        deleted = self.conn.execute("DELETE FROM tasks WHERE name = ?", (name,)).rowcount > 0
        if deleted:
            self._changed(name)
        return deleted

    def dependencies(self, name: str) -> list[dict[str, Any]]:
        """The task's recorded dependencies as stored, unknown keys included."""
        rows = self.conn.execute("SELECT document, extra FROM dependencies WHERE task = ? ORDER BY position", (name,))
        return [documents.overlay(json.loads(document), _loads(extra)) for document, extra in rows]

    def record_dependencies(self, name: str, dependencies: Iterable[BaseImageDependency],
                            previous: list[dict[str, Any]] | None = None) -> bool:
        """Replace the task's recorded dependencies; False if the task is gone. `previous[i]`: what dependency
        i was stored as, for the keys of it this version does not know.

        A dependency on the same base as before is updated in place (its index entry stays as it is), and
        one that did not change is not written at all: a run's recording writes as little as it can."""
        known = self.conn.execute("SELECT dependencies_known FROM tasks WHERE name = ?", (name,)).fetchone()
        if known is None:
            return False
        if not known[0]:
            self.conn.execute("UPDATE tasks SET dependencies_known = 1 WHERE name = ?", (name,))
        stored = {position: (base, (document, extra)) for position, *base, document, extra in self.conn.execute(
            "SELECT position, registry, repository, tag, document, extra FROM dependencies WHERE task = ?", (name,))}
        count = 0
        for count, dep in enumerate(dependencies, start=1):
            position = count - 1
            before = previous[position] if previous is not None and position < len(previous) else None
            document, extra = documents.dependency_document(dep, before)
            row = (_json(document), _dumps(extra))
            base = [dep.image.registry, dep.image.repository, dep.image.tag]
            if position in stored and stored[position][0] == base:
                if stored[position][1] != row:
                    self.conn.execute("UPDATE dependencies SET document = ?, extra = ? WHERE task = ? AND position = ?",
                                      (*row, name, position))
            else:
                self.conn.execute("INSERT OR REPLACE INTO dependencies(task, position, registry, repository, tag, "
                                  "document, extra) VALUES (?, ?, ?, ?, ?, ?, ?)", (name, position, *base, *row))
        if len(stored) > count:
            self.conn.execute("DELETE FROM dependencies WHERE task = ? AND position >= ?", (name, count))
        self._changed(name)
        return True

    def _changed(self, name: str) -> None:
        revision = self.conn.execute("INSERT INTO task_changes(task) VALUES (?)", (name,)).lastrowid or 0
        if revision > KEEP_CHANGES and revision % PRUNE_EVERY == 0:  # in batches: most writes delete nothing
            self.conn.execute("DELETE FROM task_changes WHERE revision <= ?", (revision - KEEP_CHANGES,))


class StateStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def path(self) -> Path:
        return self.db.path

    @contextmanager
    def transaction(self) -> Iterator[TaskTransaction]:
        """One write transaction: everything done through it is committed together, or not at all."""
        with self.db.write() as conn:
            yield TaskTransaction(conn, self.path)

    # Reads.

    def get(self, name: str) -> Task | None:
        with self.db.read() as conn:
            return load_tasks(conn, [name], self.path).get(name)

    def exists(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM tasks WHERE name = ?", (name,)))

    def all(self) -> list[Task]:
        return self.snapshot()[1]

    def snapshot(self) -> tuple[int, list[Task]]:
        """Every task, by name, and the revision they are at (for `changes_since`)."""
        with self.db.read() as conn, collector_paused():
            revision = self._revision(conn)
            return revision, sorted(load_tasks(conn, None, self.path).values(), key=lambda task: task.name)

    def documents(self, names: list[str] | None = None, unknown_keys: bool = False) -> dict[str, dict[str, Any]]:
        """Stored documents with their dependencies and secrets; with `unknown_keys`, also the keys this version
        does not know, where they were (for export). Without, each is what `Task.to_dict(reveal_secrets=True)`
        would give, read without building the Task."""
        with self.db.read() as conn, collector_paused():
            rows = _rows(conn, names, unknown_keys)
        return {name: documents.join(document, deps) for name, (document, deps) in rows.items()}

    def revision(self) -> int:
        with self.db.read() as conn:
            return self._revision(conn)

    def changes_since(self, revision: int) -> ChangedTasks | None:
        """The tasks changed after `revision`, or None if the notes no longer reach back that far."""
        with self.db.read() as conn:
            latest = self._revision(conn)
            if latest <= revision:
                return ChangedTasks(revision, {})
            oldest = conn.execute("SELECT MIN(revision) FROM task_changes").fetchone()[0]
            if oldest > revision + 1:
                return None
            names = sorted({name for (name,) in conn.execute(
                "SELECT task FROM task_changes WHERE revision > ?", (revision,))})
            found = load_tasks(conn, names, self.path)
            return ChangedTasks(latest, {name: found.get(name) for name in names})

    def data_version(self) -> int:
        return self.db.data_version()

    def probe(self) -> None:
        """Raise StateError unless the database opens and is whole (`quick_check`); on a connection of its own,
        closed after, for callers on short-lived threads (watch's readiness endpoint)."""
        db = Database(self.path)
        try:
            db.check_integrity()
        finally:
            db.close()

    # Writes that are one transaction each.

    def record_dependencies(self, name: str, dependencies: Iterable[BaseImageDependency]) -> bool:
        with self.transaction() as tx:
            return tx.record_dependencies(name, dependencies)

    @staticmethod
    def _revision(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT MAX(revision) FROM task_changes").fetchone()[0] or 0)


def load_tasks(conn: sqlite3.Connection, names: list[str] | None, path: Path | None) -> dict[str, Task]:
    tasks = {}
    for name, (document, deps) in _rows(conn, names).items():
        try:
            tasks[name] = Task.from_dict(documents.join(document, deps))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"State file {path} holds a malformed task '{name}': {exc!r}.",
                             f"Export what can be read with 'acrtask task export', or delete the task with "
                             f"'acrtask task delete -n {name} --yes'.") from exc
    return tasks


def _rows(conn: sqlite3.Connection, names: list[str] | None,
          unknown_keys: bool = False) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]] | None]]:
    """name -> (stored document, dependency documents or None if never recorded)."""
    rows: list[tuple[str, str, str | None, int]] = []
    deps: dict[str, list[dict[str, Any]]] = {}
    chunks: list[list[str] | None] = [None] if names is None else [
        names[i:i + _CHUNK] for i in range(0, len(names), _CHUNK)]
    for chunk in chunks:
        where, params = ("", ()) if chunk is None else (f" WHERE name IN ({','.join('?' * len(chunk))})",
                                                      tuple(chunk))
        rows.extend(conn.execute(f"SELECT name, document, extra, dependencies_known FROM tasks{where}", params))
        where = where.replace("name", "task")
        for task, document, extra in conn.execute(
                f"SELECT task, document, extra FROM dependencies{where} ORDER BY task, position", params):
            loaded = json.loads(document)
            deps.setdefault(task, []).append(documents.overlay(loaded, _loads(extra)) if unknown_keys else loaded)
    found = {}
    for name, document, extra, known in rows:
        loaded = json.loads(document)
        found[name] = (documents.overlay(loaded, _loads(extra)) if unknown_keys else loaded,
                       deps.get(name, []) if known else None)
    return found
