"""The state database file: connections, settings, schema versions, and what its failures mean.

SQLite in WAL mode: readers never block the writer, and each write is one short `BEGIN IMMEDIATE`
transaction, so a CLI command and a running watch lose nothing. Each thread gets its own
connection (watch writes from its loop and from build threads). SQLite follows a symlinked
`state.db` and puts its `-wal` and `-shm` files beside the link's target, so a link to persistent
storage keeps receiving every change. A file that is not a database, or is damaged, is reported
and never written to; a newer schema is refused.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from acrtask.errors import StateError
from acrtask.state.schema import CREATE, MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT = 60.0  # seconds a writer waits for another one; transactions last milliseconds

# Called inside the transaction that creates a new database; returns what to do after it commits.
OnCreate = Callable[[sqlite3.Connection], Callable[[], None] | None]

_UNWRITABLE = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")


def state_error(exc: sqlite3.Error | OSError, path: Path) -> StateError:
    """One clear line for what went wrong with the database file, and what to do."""
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return _disk_full(path)
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return _no_descriptors(path)
        reason = exc.strerror or str(exc)
        return StateError(f"Cannot write the state database {path}: {reason}.",
                          f"Check that {path.parent} is a writable folder of this user; nothing was changed.")
    name = getattr(exc, "sqlite_errorname", "") or ""
    base = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
    if base == "SQLITE_NOTADB":
        return StateError(f"State file {path} is not a SQLite database.",
                          "Move it aside or restore it from a backup; acrtask will not overwrite it.")
    if base == "SQLITE_CORRUPT":
        return StateError(f"State file {path} is damaged ({exc}).",
                          f"Salvage it with 'sqlite3 {path} .recover', or move it aside; acrtask will not "
                          "overwrite it.")
    if base == "SQLITE_FULL" or base == "SQLITE_IOERR" and _disk_is_full(path):
        return _disk_full(path)
    if base in ("SQLITE_CANTOPEN", "SQLITE_IOERR") and _out_of_descriptors():
        return _no_descriptors(path)
    if base in _UNWRITABLE:
        if not os.access(path.parent, os.W_OK):
            return StateError(f"Cannot write the state database {path}: {path.parent} is read-only.",
                              "Make the folder writable (or point ACRTASK_HOME at one that is); nothing was changed.")
        return StateError(f"Cannot write the state database {path}: {exc}.",
                          f"Check that {path.parent} and the files in it are writable by this user; "
                          "nothing was changed.")
    if base in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return StateError(f"The state database {path} stayed locked by another process for {BUSY_TIMEOUT:.0f}s.",
                          "Try again; nothing was changed.")
    return StateError(f"The state database {path} failed: {exc}.", "Nothing was changed.")


def _out_of_descriptors() -> bool:
    """SQLite says only that it could not open a file: this process may have no descriptors left."""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    return False


def _disk_is_full(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def _no_descriptors(path: Path) -> StateError:
    return StateError(f"Cannot open the state database {path}: too many open files.",
                      "Close some, or raise the limit (ulimit -n); nothing was changed.")


def _disk_full(path: Path) -> StateError:
    return StateError(f"Cannot write the state database {path}: the disk is full.",
                      "Free some space and run the command again; nothing was changed.")


class Database:
    def __init__(self, path: Path, on_create: OnCreate | None = None) -> None:
        self.path = path
        self.on_create = on_create
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_checked = False
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []  # each thread's, to close them
        self.unwritable: StateError | None = None  # why this database is only read (a read-only folder, a full disk)

    # Connections.

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            self._local.depth = 0
            with self._schema_lock:
                # Threads come and go (a multi-step run's steps, an HTTP request): close the connections of those
                # that ended, so a long-running watch keeps as many as it has threads.
                for thread, old in [entry for entry in self._connections if not entry[0].is_alive()]:
                    old.close()
                    self._connections.remove((thread, old))
                self._connections.append((threading.current_thread(), conn))
        return conn

    def close(self) -> None:
        """Close every thread's connection (the last one to close folds the WAL into the file).

        Also done when the Database is dropped: a connection is in a reference cycle with its statement
        cache, so without this it would stay open until the garbage collector runs."""
        with self._schema_lock:
            connections, self._connections = self._connections, []
        for _, conn in connections:
            conn.close()
        self._local = threading.local()

    def __del__(self) -> None:
        for _, conn in getattr(self, "_connections", ()):
            conn.close()

    def _open(self) -> sqlite3.Connection:
        self._create_file()
        try:
            return self._connect(read_only=False)
        except StateError as exc:
            # A folder that cannot be written (read-only, or a full disk) cannot hold the -shm file that WAL
            # readers share. With no (or an empty) -wal file there is no writer either, so the file is read as
            # it is; writes then fail with why.
            if self.unwritable is None and exc.__cause__ is not None and self._cannot_share(exc.__cause__):
                self.unwritable = exc
                return self._connect(read_only=True)
            raise

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        try:
            # Each connection is used by the thread that opened it; `close` may end them from another.
            target = f"file:{quote(str(self.path))}?mode=ro&immutable=1" if read_only else str(self.path)
            conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False,
                                   uri=read_only)
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if not read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")  # as durable as the fsynced files it replaces
            with self._schema_lock:
                if not self._schema_checked:
                    self._check_schema(conn)
                    self._schema_checked = True
        except sqlite3.Error as exc:
            conn.close()
            raise state_error(exc, self.path) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _cannot_share(self, exc: BaseException) -> bool:
        name = getattr(exc, "sqlite_errorname", "") or ""
        wal = Path(os.path.realpath(self.path) + "-wal")
        return name in ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR_SHMSIZE", "SQLITE_IOERR_SHMOPEN") \
            and _empty_or_missing(wal) and (not os.access(self.path.parent, os.W_OK) or _disk_is_full(self.path))

    def _create_file(self) -> None:
        """The folder 0700 and the file 0600 (SQLite would make it 0644); its -wal and -shm take its mode."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise state_error(exc, self.path) from exc
        if self.path.is_dir():
            raise StateError(f"State file {self.path} is a folder, not a database.",
                             "Move it aside; acrtask will not change it.")

    # Schema.

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        version = _user_version(conn)
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StateError(
                f"State file {self.path} has schema version {version}, newer than this acrtask understands "
                f"({SCHEMA_VERSION}).", "Upgrade acrtask, or point ACRTASK_HOME at another folder.")
        if self.unwritable is not None:
            raise self.unwritable
        after_commit = None
        with self._transaction(conn) as tx:
            version = _user_version(tx)  # another process may have done it while we waited
            if version == 0:
                for statement in CREATE:
                    tx.execute(statement)
                if self.on_create is not None:
                    after_commit = self.on_create(tx)
                version = SCHEMA_VERSION
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    tx.execute(statement)
            tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if after_commit is not None:
            after_commit()

    # Transactions.

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: committed if the body returns, rolled back if it raises.

        Nested calls join the outer transaction."""
        conn = self.connection()
        if self.unwritable is not None:
            raise self.unwritable
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        self._local.depth = 1
        try:
            with self._transaction(conn):
                yield conn
        finally:
            self._local.depth = 0

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(conn)
            if isinstance(exc, sqlite3.Error):
                raise state_error(exc, self.path) from exc
            raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several queries (inside a write, the write's own view)."""
        conn = self.connection()
        if self._local.depth:
            yield conn
            return
        try:
            conn.execute("BEGIN")
            yield conn
        except sqlite3.Error as exc:
            _rollback(conn)
            raise state_error(exc, self.path) from exc
        except BaseException:
            _rollback(conn)
            raise
        else:
            _rollback(conn)  # nothing was written: ending the read transaction is all it takes

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc

    def data_version(self) -> int:
        """Changes whenever another connection commits: a check that costs no table read."""
        return int(self.query("PRAGMA data_version")[0][0])

    def check_integrity(self) -> None:
        """`PRAGMA quick_check` (reads every page once): a damaged file is reported, never used."""
        problems = [row[0] for row in self.query("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StateError(f"State file {self.path} is damaged ({'; '.join(problems[:3])}).",
                             f"Salvage it with 'sqlite3 {self.path} .recover', or move it aside; acrtask will not "
                             "overwrite it.")


def _empty_or_missing(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the transaction is gone already (SQLite rolls back on some errors itself)
