"""The state file on a bad day: no room, no rights, odd folders, killed writers, symlinks, newer fields.

Each failure is one ERROR line with the right exit code and leaves the state file byte for byte as it was.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from acrtask.files import atomic_write, remove_stale_temp_files
from acrtask.state import unknown_keys, with_unknown_keys
from tests.cli_helpers import Result, run_cli

REG = "localhost:5000"


def create(ctx: Path, name: str, *extra: str) -> Result:
    return run_cli("task", "create", "-n", name, "-c", str(ctx), "-t", f"{REG}/app:v1", "-o", "none", *extra)


def assert_one_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, result.err
    assert result.err.startswith("ERROR: ") and result.err.count("\n") == 1, result.err
    assert "Unexpected error" not in result.err and "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# Issue 9, item 9: faults of the environment are exit 1, one line, nothing changed.


def test_lock_file_that_is_a_folder(home: Path, ctx: Path) -> None:
    assert create(ctx, "existing").code == 0
    before = (home / "state.toml").read_bytes()
    (home / "state.toml.lock").unlink()
    (home / "state.toml.lock").mkdir()
    assert_one_error(create(ctx, "second"), 1, f"Cannot lock the state file {home / 'state.toml'}",
                     "Is a directory", "Move that folder away")
    assert (home / "state.toml").read_bytes() == before


def test_home_folder_that_is_not_writable(home: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert create(ctx, "existing").code == 0
    before = (home / "state.toml").read_bytes()
    real_open = os.open

    def refuse_in_home(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # What a folder without write permission does (tests may run as root, where chmod does not bind).
        if flags & os.O_CREAT and str(path).startswith(str(home)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_in_home)
    for argv in (["task", "create", "-n", "second", "-c", str(ctx), "-t", f"{REG}/a:1"],
                 ["task", "update", "-n", "existing", "--status", "Disabled"],
                 ["task", "delete", "-n", "existing", "--yes"]):
        assert_one_error(run_cli(*argv), 1, "Permission denied", "Make the folder writable")
    assert (home / "state.toml").read_bytes() == before


def test_disk_full_while_writing(home: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert create(ctx, "existing").code == 0
    before = (home / "state.toml").read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    assert_one_error(create(ctx, "second"), 1, f"Cannot write the state file {home / 'state.toml'}",
                     "No space left on device", "Free some disk space")
    assert (home / "state.toml").read_bytes() == before
    assert temp_files(home) == []


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
    assert not (home / "state.toml").exists()


def test_a_secret_value_with_bad_bytes_is_not_echoed(home: Path, ctx: Path) -> None:
    result = create(ctx, "with-secret", "--secret-arg", os.fsdecode(b"TOKEN=hunter2-\xff"))
    assert_one_error(result, 2, "argument --secret-arg: the value has bytes that are not UTF-8")
    assert "hunter2" not in result.err


def test_runs_folder_that_is_a_file(home: Path, ctx: Path) -> None:
    """Any other file the environment refuses: its name and the reason, exit 1, not "Unexpected error"."""
    assert create(ctx, "app-build", "--no-push").code == 0
    (home / "runs").write_text("")
    assert_one_error(run_cli("task", "logs", "--run-id", "ca1"), 1, f"{home / 'runs'}", "Not a directory")


# Item 13: temporary files of writers killed mid-write are removed by the next write.

STALLED_WRITER = """
import os, sys, time
from pathlib import Path
from acrtask.files import atomic_write

def stall(fd):
    print("writing", flush=True)
    time.sleep(120)

os.fsync = stall
atomic_write(Path(sys.argv[1]), b"half of a state file")
"""


def _backdate(path: Path, seconds: float = 120) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(home: Path, ctx: Path) -> None:
    assert create(ctx, "existing").code == 0
    writer = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, str(home / "state.toml")],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        ready, _, _ = select.select([writer.stdout], [], [], 60)
        assert ready and writer.stdout is not None and writer.stdout.readline() == "writing\n"
        [left] = temp_files(home)
        _backdate(home / left)
        assert create(ctx, "while-alive").code == 0
        assert temp_files(home) == [left], "a temp file a live writer holds locked must stay"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        assert temp_files(home) == [left]
        assert create(ctx, "after-kill").code == 0
        assert temp_files(home) == []
    finally:
        writer.kill()
        writer.wait(timeout=30)
    tasks = tomllib.loads((home / "state.toml").read_text())["tasks"]
    assert sorted(tasks) == ["after-kill", "existing", "while-alive"]


def test_only_old_unlocked_temp_files_are_stale(tmp_path: Path) -> None:
    state = tmp_path / "state.toml"
    old, fresh, held, other = (tmp_path / name for name in (
        ".state.toml.old1.tmp", ".state.toml.new1.tmp", ".state.toml.held.tmp", ".runs.json.old2.tmp"))
    for path in (old, fresh, held, other):
        path.write_bytes(b"x")
    for path in (old, held, other):
        _backdate(path)
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_stale_temp_files(state) == [old]
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (fresh, held, other))


# Item 14: a symlinked state file stays a link; writes go to its target.


def test_symlinked_state_file_is_written_through(home: Path, ctx: Path, tmp_path: Path) -> None:
    persist = tmp_path / "persist"
    persist.mkdir()
    home.mkdir()
    link = home / "state.toml"
    link.symlink_to(Path("..") / "persist" / "state.toml")  # relative, and dangling until the first write
    for name in ("first-task", "second-task"):
        assert create(ctx, name).code == 0
        assert link.is_symlink() and os.readlink(link) == "../persist/state.toml"
    assert sorted(tomllib.loads((persist / "state.toml").read_text())["tasks"]) == ["first-task", "second-task"]
    assert run_cli("task", "list", "--query", "[].name", "-o", "tsv").out == "first-task\nsecond-task\n"
    assert (persist / "state.toml.lock").exists()  # writers through other links share the target's lock
    assert temp_files(home) == temp_files(persist) == []


def test_atomic_write_through_a_chain_of_links(tmp_path: Path) -> None:
    target = tmp_path / "real" / "file"
    target.parent.mkdir()
    target.write_bytes(b"old")
    (tmp_path / "middle").symlink_to(target)
    (tmp_path / "link").symlink_to(tmp_path / "middle")
    atomic_write(tmp_path / "link", b"new")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "middle").is_symlink()
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600


# Item 15: keys this version does not know, inside a task, survive its writes.


def test_unknown_keys_inside_a_task_survive_an_update(home: Path, ctx: Path) -> None:
    assert create(ctx, "app-build", "--schedule", "nightly:0 3 * * *").code == 0
    state = home / "state.toml"
    document = tomllib.loads(state.read_text())
    task = document["tasks"]["app-build"]
    task["futureField"] = "kept"
    task["futureTable"] = {"a": 1}
    task["step"]["futureStep"] = [1, 2]
    task["trigger"]["baseImageTrigger"]["futureFlag"] = True
    document["futureSection"] = {"x": "y"}
    state.write_text(tomli_w.dumps(document))

    result = run_cli("task", "update", "-n", "app-build", "--status", "Disabled", "-t", f"{REG}/other:v2")
    assert result.code == 0, result.err
    assert "futureField" not in result.out  # kept in the file, not shown as if this version knew it
    written = tomllib.loads(state.read_text())
    task = written["tasks"]["app-build"]
    assert task["status"] == "Disabled"
    assert task["step"]["imageNames"] == [f"{REG}/other:v2"]
    assert task["futureField"] == "kept" and task["futureTable"] == {"a": 1}
    assert task["step"]["futureStep"] == [1, 2]
    assert task["trigger"]["baseImageTrigger"]["futureFlag"] is True
    assert written["futureSection"] == {"x": "y"}
    assert run_cli("task", "delete", "-n", "app-build", "--yes").code == 0
    assert tomllib.loads(state.read_text())["tasks"] == {}


@pytest.mark.parametrize(("stored", "known", "extra"), [
    ({"a": 1}, {"a": 2}, {}),
    ({"a": 1, "new": 2}, {"a": 1}, {"new": 2}),
    ({"t": {"a": 1, "new": {"deep": 1}}}, {"t": {"a": 1}}, {"t": {"new": {"deep": 1}}}),
    ({"t": {"a": 1}}, {"t": {"a": 1}, "b": 2}, {}),
    ({"l": [{"a": 1, "new": 1}]}, {"l": [{"a": 1}]}, {}),  # lists are values as a whole
    ({"t": "was a string"}, {"t": {"a": 1}}, {}),
])
def test_unknown_keys_table(stored: dict[str, Any], known: dict[str, Any], extra: dict[str, Any]) -> None:
    assert unknown_keys(stored, known) == extra


@pytest.mark.parametrize(("known", "extra", "merged"), [
    ({"a": 1}, {"new": 2}, {"a": 1, "new": 2}),
    ({"a": 1}, {"a": 9}, {"a": 1}),  # what this version writes wins
    ({"t": {"a": 1}}, {"t": {"new": 2}}, {"t": {"a": 1, "new": 2}}),
    ({"t": [1]}, {"t": {"new": 2}}, {"t": [1]}),
])
def test_with_unknown_keys_table(known: dict[str, Any], extra: dict[str, Any], merged: dict[str, Any]) -> None:
    assert with_unknown_keys(known, extra) == merged
