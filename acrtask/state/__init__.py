"""The state database (SQLite, WAL): tasks, recorded dependencies, runs, schema migrations; TOML
import and export for people and git. See db.py for the file, tasks.py and runs.py for what it holds."""

from __future__ import annotations

from pathlib import Path

from acrtask.state.db import Database
from acrtask.state.tasks import ChangedTasks, StateStore, TaskTransaction

__all__ = ["Database", "StateStore", "ChangedTasks", "TaskTransaction", "open_database"]


def open_database(path: Path) -> Database:
    """The database at `path`; when it is new, the old files of its folder (state.toml, runs/) move in."""
    from acrtask.state.legacy import importer

    return Database(path, on_create=importer(path.parent))
