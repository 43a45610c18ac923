"""The one-time move of a home in the old format (state.toml, runs/*.json, runs/counter) into state.db.

It runs inside the transaction that creates the database, so either everything arrives (tasks with
their timers, secrets, recorded dependencies and unknown keys; runs; the next run id) or nothing
does and the old files stay in use. The counts are checked before the commit. Afterwards the old
files are renamed `*.migrated` (logs stay where they are) and one line on stderr says what happened.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acrtask.errors import StateError
from acrtask.files import HeldLock, exclusive_lock, real_path
from acrtask.model import Run
from acrtask.runids import PREFIX, run_id, run_number
from acrtask.state import documents, toml_io
from acrtask.state.runs import RunRecords
from acrtask.state.tasks import TaskTransaction

log = logging.getLogger("acrtask.state")

MIGRATED = ".migrated"
EXTRA_SECTIONS = "stateTomlSections"  # settings key: top-level sections of state.toml this version does not know


@dataclass
class LegacyHome:
    home: Path
    state_file: Path = field(init=False)
    runs_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.state_file = self.home / "state.toml"
        self.runs_dir = self.home / "runs"

    @property
    def counter(self) -> Path:
        return self.runs_dir / "counter"

    def records(self) -> list[tuple[int, Path]]:
        if not self.runs_dir.is_dir():
            return []
        found = [(run_number(path.stem), path) for path in self.runs_dir.glob(f"{PREFIX}*.json")]
        return sorted((number, path) for number, path in found if number is not None)

    def present(self) -> bool:
        return self.state_file.exists() or self.counter.exists() or bool(self.records())


def importer(home: Path) -> Callable[[sqlite3.Connection], Callable[[], None] | None]:
    """The `on_create` hook of a new state.db in `home`: import the old files if there are any."""

    def on_create(conn: sqlite3.Connection) -> Callable[[], None] | None:
        legacy = LegacyHome(home)
        if not legacy.present():
            return None
        lock = _lock(legacy)  # an older acrtask still writing state.toml finishes first
        try:
            moved = _import(conn, legacy)
        except BaseException:
            _unlock(lock)
            raise

        def after_commit() -> None:
            try:
                _rename_old_files(legacy)
            except OSError as exc:  # everything is in the database already: say so, and go on
                log.warning(f"{moved} The old files could not be renamed ({exc.filename}: {exc.strerror}); "
                            "they are no longer used.")
                return
            finally:
                _unlock(lock)
            log.warning(f"{moved} The old files are kept as *{MIGRATED}.")

        return after_commit

    return on_create


def _import(conn: sqlite3.Connection, legacy: LegacyHome) -> str:
    state = toml_io.State()
    if legacy.state_file.exists():
        try:
            _, document = toml_io.read_text(legacy.state_file)
        except toml_io.FileProblem as exc:
            raise StateError(f"State file {legacy.state_file} {exc}.",
                             "Fix it by hand or move it aside; acrtask will not overwrite it.") from exc
        state = toml_io.parse_document(document, legacy.state_file)
    tx = TaskTransaction(conn)
    dependency_count = 0
    for name, task in state.tasks.items():
        raw = state.documents[name]
        tx.put(task, previous=raw)
        if task.step.base_image_dependencies is not None:
            raw_deps = documents.split(raw)[1] or []
            tx.record_dependencies(name, task.step.base_image_dependencies, previous=raw_deps)
            dependency_count += len(task.step.base_image_dependencies)
    if state.extra:
        conn.execute("INSERT INTO settings(key, value) VALUES (?, ?)", (EXTRA_SECTIONS, json.dumps(state.extra)))

    runs = 0
    highest = 0
    for number, path in legacy.records():
        raw_run = _read_run(path)
        run = Run.from_dict(raw_run)
        shown = run.to_dict()
        RunRecords.insert(conn, number, run, documents.overlay(shown, documents.unknown(raw_run, shown)))
        runs += 1
        highest = max(highest, number)
    counter = _read_counter(legacy.counter)
    next_number = max(counter, highest)
    conn.execute("UPDATE counters SET value = ? WHERE name = 'run'", (next_number,))

    _check_counts(conn, len(state.tasks), dependency_count, runs, legacy)
    return (f"Moved {len(state.tasks)} task(s) and {runs} run record(s) from {legacy.state_file} and "
            f"{legacy.runs_dir}/*.json into the state database; run ids continue at {run_id(next_number + 1)}.")


def _read_run(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        Run.from_dict(raw)
        return raw  # type: ignore[no-any-return]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"Run record {path} is corrupt ({exc}), so the old files were not moved into the "
                         "state database.", f"Fix or delete {path} (it is only history) and run the command "
                         "again.") from exc


def _read_counter(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):  # no counter, or one lost by hand: the records say where ids are
        return 0


def _check_counts(conn: sqlite3.Connection, tasks: int, dependencies: int, runs: int, legacy: LegacyHome) -> None:
    found = tuple(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("tasks", "dependencies", "runs"))
    if found != (tasks, dependencies, runs):
        raise StateError(f"Moving {legacy.home}'s old files into the state database gave {found} tasks, "
                         f"dependencies and runs instead of {(tasks, dependencies, runs)}; nothing was moved.",
                         "Report this as a bug; the old files are unchanged and still in use.")


def _rename_old_files(legacy: LegacyHome) -> None:
    for _, path in legacy.records():
        os.replace(path, path.with_name(path.name + MIGRATED))
    for path in (legacy.counter, legacy.state_file):
        if path.exists() or path.is_symlink():
            os.replace(path, path.with_name(path.name + MIGRATED))


def _lock(legacy: LegacyHome) -> HeldLock | None:
    if not legacy.state_file.exists():
        return None
    target = real_path(legacy.state_file)  # older versions lock beside a symlink's target
    return exclusive_lock(target.with_name(target.name + ".lock"))


def _unlock(lock: HeldLock | None) -> None:
    if lock is not None:
        lock.release()

