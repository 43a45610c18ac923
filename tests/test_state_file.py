"""The state database on a bad day: no rights, odd folders, symlinks, newer fields (issue 9, items 9 and 13-16).

Each failure is one ERROR line with the right exit code and leaves the stored state as it was. A full disk
and a read-only folder are in test_state_faults.py (a real tmpfs), killed writers in test_state_crash.py
(SIGKILL mid-transaction: SQLite leaves no temporary files to clean, its WAL is recovered on the next open),
damaged and newer files in test_state_db.py.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import pytest

from acrtask import wiring
from acrtask.run_record import RunTrigger
from acrtask.state import documents
from tests.support.cli import Result, run_cli, state_dump

REG = "localhost:5000"


def create(ctx: Path, name: str, *extra: str) -> Result:
    return run_cli("task", "create", "-n", name, "-c", str(ctx), "-t", f"{REG}/app:v1", "-o", "none", *extra)


def assert_one_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, result.err
    assert result.err.startswith("ERROR: ") and result.err.count("\n") == 1, result.err
    assert "Unexpected error" not in result.err and "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


# Issue 9, item 9: faults of the environment are exit 1, one line, nothing changed.


def test_state_database_that_is_a_folder(home: Path, ctx: Path) -> None:
    (home / "state.db").mkdir(parents=True)
    for argv in (["task", "list"], ["task", "create", "-n", "second", "-c", str(ctx), "-t", f"{REG}/a:1"]):
        assert_one_error(run_cli(*argv), 1, f"State file {home / 'state.db'} is a folder, not a database",
                         "Move it aside")
    assert list((home / "state.db").iterdir()) == []


def test_home_folder_where_the_database_cannot_be_made(home: Path, ctx: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """What a folder without write permission does to a new home (tests may run as root, where chmod does not
    bind; an existing database in a read-only folder is in test_state_faults.py)."""
    from acrtask.state import db

    real_open = os.open

    def refuse_in_home(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and str(path).startswith(str(home)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(db.os, "open", refuse_in_home)
    for argv in (["task", "create", "-n", "second", "-c", str(ctx), "-t", f"{REG}/a:1"],
                 ["task", "update", "-n", "existing", "--status", "Disabled"], ["task", "list"]):
        assert_one_error(run_cli(*argv), 1, f"Cannot write the state database {home / 'state.db'}: Permission denied",
                         "writable")
    assert not (home / "state.db").exists()


def test_home_of_an_unknown_user(tmp_path: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACRTASK_HOME", "~nosuchuser-acrtask/home")
    assert_one_error(run_cli("task", "list"), 1, "the home folder in '~nosuchuser-acrtask/home' is unknown",
                     "Set ACRTASK_HOME")


def test_context_dot_inside_a_folder_whose_name_is_not_utf8(home: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))  # latin-1 "café"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM localhost:5000/base:1\n")
    monkeypatch.chdir(folder)
    assert_one_error(run_cli("task", "create", "-n", "latin-one", "-c", ".", "-t", f"{REG}/a:1"), 2,
                     "caf\\xe9' has a name with bytes that are not UTF-8")
    assert not (home / "state.db").exists()


def test_a_secret_value_with_bad_bytes_is_not_echoed(home: Path, ctx: Path) -> None:
    result = create(ctx, "with-secret", "--secret-arg", os.fsdecode(b"TOKEN=hunter2-\xff"))
    assert_one_error(result, 2, "argument --secret-arg: the value has bytes that are not UTF-8")
    assert "hunter2" not in result.err


def test_runs_folder_that_is_a_file(home: Path, ctx: Path) -> None:
    """Any other file the environment refuses: its name and the reason, exit 1, not "Unexpected error"."""
    assert create(ctx, "app-build", "--no-push").code == 0
    run = wiring.Program().run_store.create(wiring.Program().state_store.get("app-build"), RunTrigger())
    (home / "runs").rmdir() if (home / "runs").is_dir() else None
    (home / "runs").write_text("")
    assert_one_error(run_cli("task", "logs", "--run-id", run.run_id), 1, f"{home / 'runs'}", "Not a directory")


# Item 14: a symlinked state database stays a link; writes go to its target.


def test_symlinked_state_database_is_written_through(home: Path, ctx: Path, tmp_path: Path) -> None:
    persist = tmp_path / "persist"
    persist.mkdir()
    home.mkdir()
    link = home / "state.db"
    link.symlink_to(Path("..") / "persist" / "state.db")  # relative, and dangling until the first write
    for name in ("first-task", "second-task"):
        assert create(ctx, name).code == 0
        assert link.is_symlink() and os.readlink(link) == "../persist/state.db"
    conn = sqlite3.connect(persist / "state.db")
    assert sorted(name for (name,) in conn.execute("SELECT name FROM tasks")) == ["first-task", "second-task"]
    conn.close()
    assert run_cli("task", "list", "--query", "[].name", "-o", "tsv").out == "first-task\nsecond-task\n"
    assert (persist / "state.db").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in home.iterdir()) == ["state.db"]  # no -wal or -shm beside the link


# Item 15: keys this version does not know, inside a task, survive its writes.


def test_unknown_keys_inside_a_task_survive_an_update(home: Path, ctx: Path) -> None:
    assert create(ctx, "app-build", "--schedule", "nightly:0 3 * * *").code == 0
    conn = sqlite3.connect(home / "state.db")  # as a newer acrtask writes the task: fields it knows, in place
    task = json.loads(conn.execute("SELECT document FROM tasks WHERE name = 'app-build'").fetchone()[0])
    task["futureField"] = "kept"
    task["futureTable"] = {"a": 1}
    task["step"]["futureStep"] = [1, 2]
    task["trigger"]["baseImageTrigger"]["futureFlag"] = True
    task["trigger"]["timerTriggers"][0]["jitter"] = 30
    with conn:
        conn.execute("UPDATE tasks SET document = ? WHERE name = 'app-build'", (json.dumps(task),))
    conn.close()

    result = run_cli("task", "update", "-n", "app-build", "--status", "Disabled", "-t", f"{REG}/other:v2")
    assert result.code == 0, result.err
    assert "futureField" not in result.out  # kept, not shown as if this version knew it
    assert "future" not in run_cli("task", "show", "-n", "app-build").out
    exported = tomllib.loads(run_cli("task", "export").out)["tasks"]["app-build"]
    assert exported["status"] == "Disabled"
    assert exported["step"]["imageNames"] == [f"{REG}/other:v2"]
    assert exported["futureField"] == "kept" and exported["futureTable"] == {"a": 1}
    assert exported["step"]["futureStep"] == [1, 2]
    assert exported["trigger"]["baseImageTrigger"]["futureFlag"] is True
    assert exported["trigger"]["timerTriggers"] == [{"name": "nightly", "schedule": "0 3 * * *", "status": "Enabled",
                                                     "jitter": 30}]
    assert run_cli("task", "delete", "-n", "app-build", "--yes").code == 0
    assert [line for line in state_dump(home) if "future" in line] == []


@pytest.mark.parametrize(("stored", "known", "extra"), [
    ({"a": 1}, {"a": 2}, None),
    ({"a": 1, "new": 2}, {"a": 1}, {"new": 2}),
    ({"t": {"a": 1, "new": {"deep": 1}}}, {"t": {"a": 1}}, {"t": {"new": {"deep": 1}}}),
    ({"t": {"a": 1}}, {"t": {"a": 1}, "b": 2}, None),
    ({"l": [{"name": "x", "a": 1, "new": 1}, {"name": "y"}]}, {"l": [{"name": "y"}, {"name": "x", "a": 1}]},
     {"l": {"__items__": {"x": {"new": 1}}}}),  # named tables in a list: by name
    ({"l": [{"a": 1, "new": 1}]}, {"l": [{"a": 1}]}, {"l": {"__items__": {"0": {"new": 1}}}}),  # else by position
    ({"l": [{"name": "gone", "new": 1}]}, {"l": []}, None),  # a removed element takes its keys with it
    ({"t": "was a string"}, {"t": {"a": 1}}, None),
])
def test_unknown_keys_table(stored: dict[str, Any], known: dict[str, Any], extra: Any) -> None:
    assert documents.unknown(stored, known) == extra


@pytest.mark.parametrize(("known", "extra", "merged"), [
    ({"a": 1}, {"new": 2}, {"a": 1, "new": 2}),
    ({"a": 1}, {"a": 9}, {"a": 1}),  # what this version writes wins
    ({"t": {"a": 1}}, {"t": {"new": 2}}, {"t": {"a": 1, "new": 2}}),
    ({"t": [1]}, {"t": {"new": 2}}, {"t": [1]}),
    ({"l": [{"name": "x"}, {"name": "y"}]}, {"l": {"__items__": {"y": {"new": 1}}}},
     {"l": [{"name": "x"}, {"name": "y", "new": 1}]}),
    ({"a": 1}, None, {"a": 1}),
])
def test_overlay_table(known: dict[str, Any], extra: Any, merged: dict[str, Any]) -> None:
    assert documents.overlay(known, extra) == merged
