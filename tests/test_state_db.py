"""The state database against real SQLite files: its settings, what a write touches, symlinks, change notes,
and what a damaged, newer or foreign file does (one ERROR line, nothing changed)."""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from acrtask.dependency import BaseImageDependency, DependencyType
from acrtask.model import Status, Step, Task, TimerTrigger, Trigger
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.state import Database, StateStore, schema, tasks
from tests.support.cli import run_cli, state_dump

DIGEST = "sha256:" + "a" * 64


def dep(repository: str, tag: str = "1", digest: str = DIGEST) -> BaseImageDependency:
    return BaseImageDependency(DependencyType.RUNTIME, ImageRef("reg.local:5000", repository, tag), digest, digest,
                               Platform("linux", "amd64"))


def task(name: str, deps: tuple[BaseImageDependency, ...] | None = None) -> Task:
    return Task(name=name, step=Step(context_path="/src", image_names=(f"reg.local:5000/{name}:1",),
                                     base_image_dependencies=deps))


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(Database(tmp_path / "home" / "state.db"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACRTASK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_new_database_is_private_and_in_wal_mode(store: StateStore) -> None:
    with store.transaction() as tx:
        tx.save(task("first-task", (dep("base"),)))
    conn = store.db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    folder = store.path.parent
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in ("state.db", "state.db-wal", "state.db-shm"):  # the connection is open: all three exist
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name


def test_recording_a_runs_dependencies_touches_only_that_tasks_rows(store: StateStore) -> None:
    with store.transaction() as tx:
        for i in range(50):
            tx.save(task(f"task-{i:03d}", (dep(f"base{i}"), dep("shared"))))
    others_before = [line for line in state_dump(store.path.parent) if "task-007" not in line
                     and "task_changes" not in line]
    conn = store.db.connection()
    changes_before = conn.total_changes
    assert store.record_dependencies("task-007", (dep("base7", digest="sha256:" + "b" * 64),))
    # The dependency on the same base updated in place, the other one deleted, one change note: 3 rows,
    # whatever the number of tasks.
    assert conn.total_changes - changes_before == 3
    others_after = [line for line in state_dump(store.path.parent) if "task-007" not in line
                    and "task_changes" not in line]
    assert others_after == others_before
    assert store.get("task-007").step.dependencies == (dep("base7", digest="sha256:" + "b" * 64),)
    assert not store.record_dependencies("no-such-task", (dep("x"),))  # deleted while it built: nothing


def test_changes_since_names_only_what_changed(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    with store.transaction() as tx:
        for name in ("task-one", "task-two", "task-three"):
            tx.save(task(name))
    revision, loaded = store.snapshot()
    assert [t.name for t in loaded] == ["task-one", "task-three", "task-two"]
    assert store.changes_since(revision) == tasks.ChangedTasks(revision, {})
    other = StateStore(Database(store.path))  # another process's connection
    other.record_dependencies("task-two", (dep("base"),))
    with other.transaction() as tx:
        tx.delete("task-three")
    changes = store.changes_since(revision)
    assert changes is not None and set(changes.tasks) == {"task-two", "task-three"}
    assert changes.tasks["task-three"] is None
    assert changes.tasks["task-two"].step.dependencies == (dep("base"),)
    assert changes.revision == store.revision() > revision
    # A reader further behind than the notes kept reloads everything.
    monkeypatch.setattr(tasks, "KEEP_CHANGES", 2)
    monkeypatch.setattr(tasks, "PRUNE_EVERY", 1)
    for _ in range(3):
        other.record_dependencies("task-one", (dep("base"),))
    assert store.changes_since(revision) is None


def test_unknown_keys_inside_a_task_survive_every_write(store: StateStore) -> None:
    """A newer acrtask's fields, at any depth, are kept when this version writes the task."""
    base = task("newer-task", (dep("base"),))
    base = replace(base, trigger=Trigger(timers=(TimerTrigger("nightly", "0 3 * * *"),
                                                 TimerTrigger("hourly", "0 * * * *"))))
    document = base.to_dict(reveal_secrets=True)
    document["agentPool"] = "large"
    document["step"]["cacheFrom"] = ["reg.local:5000/cache:1"]
    document["trigger"]["timerTriggers"][1]["jitter"] = 30
    document["step"]["baseImageDependencies"][0]["sizeBytes"] = 123
    with store.transaction() as tx:
        tx.put(base, previous=document)
        tx.record_dependencies(base.name, base.step.dependencies,
                               previous=document["step"]["baseImageDependencies"])
    with store.transaction() as tx:  # what `task update --status Disabled` and `timer remove` do
        current = tx.get("newer-task")
        tx.put(replace(current, status=Status.DISABLED,
                       trigger=replace(current.trigger, timers=current.trigger.timers[1:])))
    assert "agentPool" not in str(store.documents(["newer-task"]))  # what is shown: this version's shape
    kept = store.documents(["newer-task"], unknown_keys=True)["newer-task"]
    assert kept["status"] == "Disabled"
    assert kept["agentPool"] == "large"
    assert kept["step"]["cacheFrom"] == ["reg.local:5000/cache:1"]
    assert kept["trigger"]["timerTriggers"] == [{"name": "hourly", "schedule": "0 * * * *", "status": "Enabled",
                                                 "jitter": 30}]
    assert kept["step"]["baseImageDependencies"][0]["sizeBytes"] == 123


def test_symlinked_database_is_written_through(home: Path, tmp_path: Path) -> None:
    """The link stays a link; its target (and the -wal and -shm beside it) receive every change."""
    storage = tmp_path / "persistent"
    storage.mkdir()
    home.mkdir()
    (home / "state.db").symlink_to(storage / "acrtask.db")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    for name in ("task-one", "task-two"):
        assert run_cli("task", "create", "-n", name, "-c", str(ctx), "--no-push").code == 0
    assert (home / "state.db").is_symlink()
    db = Database(home / "state.db")
    StateStore(db).get("task-one")  # holds a connection open, so the -wal and -shm files exist
    assert (storage / "acrtask.db-wal").exists() and (storage / "acrtask.db-shm").exists()
    assert not (home / "state.db-wal").exists() and not (home / "state.db-shm").exists()
    db.close()
    direct = sqlite3.connect(storage / "acrtask.db")
    assert sorted(n for (n,) in direct.execute("SELECT name FROM tasks")) == ["task-one", "task-two"]
    direct.close()


def corrupt_tasks_table(path: Path) -> None:
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xff" * 64)


@pytest.mark.parametrize("damage", ["not a database", "newer schema", "damaged page"])
def test_a_bad_database_file_is_reported_and_never_changed(home: Path, tmp_path: Path, damage: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    assert run_cli("task", "create", "-n", "first-task", "-c", str(ctx), "--no-push").code == 0
    path = home / "state.db"
    expected = {"not a database": f"ERROR: State file {path} is not a SQLite database.",
                "newer schema": f"ERROR: State file {path} has schema version 99, newer than this acrtask "
                                "understands (1).",
                "damaged page": f"ERROR: State file {path} is damaged ("}[damage]
    if damage == "not a database":
        path.write_bytes(b"this is not a database, but a note someone saved here\n" * 100)
    elif damage == "newer schema":
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
    else:
        corrupt_tasks_table(path)
    before = path.read_bytes()
    for argv in (["task", "list"], ["task", "create", "-n", "second-task", "-c", str(ctx), "--no-push"],
                 ["task", "export"], ["task", "watch", "--once"]):
        result = run_cli(*argv)
        assert result.code == 1, (argv, result.err)
        assert result.err.count("\n") == 1, result.err
        assert result.err.startswith(expected), result.err
        assert "Traceback" not in result.err
        assert path.read_bytes() == before


def test_a_full_disk_while_creating_the_database_is_one_error_line(home: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected ENOSPC (tests/test_state_faults.py fills a real tmpfs where the machine allows mounting one)."""
    from acrtask.state import db

    real_open = db.os.open

    def full(path, flags, mode=0o777):  # noqa: ANN001, ANN202 - os.open's signature
        if str(path).endswith("state.db"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode)

    monkeypatch.setattr(db.os, "open", full)
    result = run_cli("task", "list")
    assert result.code == 1
    assert result.err == (f"ERROR: Cannot write the state database {home / 'state.db'}: the disk is full. "
                          "Free some space and run the command again; nothing was changed.\n")
    assert not (home / "state.db").exists()


def test_tasks_shown_from_their_documents_are_what_task_to_dict_gives(store: StateStore) -> None:
    """`task list` and `task show` print stored documents (secret values left out) without building Task
    objects: for every shape of task, that is exactly the model's own `to_dict()`."""
    from acrtask.model import Argument, Platform, SourceTrigger
    from acrtask.service import TaskService

    shapes = [
        task("never-ran"),
        task("from-scratch", ()),
        replace(task("with-all", (dep("base"), dep("tools", "2"))), platform=Platform("linux", "arm", "v7"),
                trigger=Trigger(timers=(TimerTrigger("nightly", "0 3 * * *", Status.DISABLED),),
                                sources=(SourceTrigger("https://example.com/r.git", "main"),))),
    ]
    shapes[2] = replace(shapes[2], step=replace(shapes[2].step, target="final", arguments=(
        Argument("PLAIN", "1"), Argument("FROM_ENV"), Argument("TOKEN", "hunter2-secret", is_secret=True),
        Argument("ENV_SECRET", is_secret=True))))
    from acrtask.model import BaseImageTrigger, StepType

    shapes.append(replace(task("hooked-task"), trigger=Trigger(base_image=BaseImageTrigger(
        update_trigger_endpoint="http://127.0.0.1:9/hook", update_trigger_token="hunter2-token"))))
    shapes.append(replace(task("file-task"), registry="localhost:5000", step=Step(
        context_path="/src", type=StepType.FILE_TASK, task_file_path="acr-task.yaml",
        values=(Argument("tag", "v2"), Argument("token", "hunter2-secret", is_secret=True)))))
    with store.transaction() as tx:
        for shape in shapes:
            tx.save(shape)
    service = TaskService(store)
    assert service.shown() == [t.to_dict() for t in store.all()]
    assert service.shown("with-all") == [store.get("with-all").to_dict()]
    assert "hunter2" not in str(service.shown())


def test_connections_of_threads_that_ended_are_closed(store: StateStore) -> None:
    """A long-running watch opens a connection per thread (build steps, HTTP requests): the ended ones close."""
    import threading

    for _ in range(5):
        worker = threading.Thread(target=store.revision)
        worker.start()
        worker.join(10)
    store.revision()  # this thread's connection: the five others have ended
    open_now = store.db._connections
    assert [thread for thread, _ in open_now] == [threading.current_thread()]
