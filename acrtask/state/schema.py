"""The state database's tables, and the migrations that bring an older database up to date.

`PRAGMA user_version` says which schema a file has: 0 is a new, empty file; SCHEMA_VERSION is this
code's. A migration is a list of statements run in the one transaction that also sets the version,
so a database is always wholly at one version. docs/architecture.md shows this schema.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# Version 1, created whole in a new database.
CREATE = (
    # A task's definition in az's JSON shape (secrets included), without its recorded dependencies;
    # `extra`: the keys of it this version does not know (a newer acrtask's), kept for its next write.
    """CREATE TABLE tasks (
        name TEXT PRIMARY KEY NOT NULL,
        document TEXT NOT NULL,
        extra TEXT,
        dependencies_known INTEGER NOT NULL DEFAULT 0  -- 1 once a run recorded its bases (maybe none)
    ) WITHOUT ROWID""",
    # The base images a task's last run used, one row each: "which tasks build on this base" is an
    # index lookup, and recording a run's dependencies rewrites only that task's rows.
    """CREATE TABLE dependencies (
        task TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        registry TEXT NOT NULL,
        repository TEXT NOT NULL,
        tag TEXT,  -- NULL for FROM image@digest
        document TEXT NOT NULL,  -- type, digest, platformDigest, platform, isPinned
        extra TEXT,  -- keys this version does not know
        PRIMARY KEY (task, position)
    ) WITHOUT ROWID""",
    "CREATE INDEX dependencies_by_base ON dependencies(registry, repository, tag)",
    # Every write of a task adds its name here, so watch reloads only the tasks that changed.
    # Old rows are pruned; a reader that fell behind the oldest row reloads everything.
    """CREATE TABLE task_changes (
        revision INTEGER PRIMARY KEY AUTOINCREMENT,
        task TEXT NOT NULL
    )""",
    # Run records in az's JSON shape; number N is run id caN.
    """CREATE TABLE runs (
        number INTEGER PRIMARY KEY,
        task TEXT NOT NULL,
        status TEXT NOT NULL,
        document TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_task ON runs(task, number)",
    "CREATE INDEX runs_by_status ON runs(status, number)",
    # 'run': the last run number given out. Only ever increases, so ids are never reused.
    "CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO counters(name, value) VALUES ('run', 0)",
    # Small facts kept between starts: sections of a migrated state.toml this version does not know,
    # where the data came from.
    "CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID",
)

# MIGRATIONS[v] takes a database from version v to v + 1 (v >= 1). None yet.
MIGRATIONS: dict[int, tuple[str, ...]] = {}
