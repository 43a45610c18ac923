"""files.py: whole-or-nothing writes through symlinks that clear the temporary files of killed writers (what
builders.toml and notify.json are written with; the tasks live in the state database, tests/test_state_*.py),
and the one lock helper every lock file of acrtask is taken with."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from acrtask import files
from acrtask.files import atomic_write, exclusive_lock, try_lock


def _backdate(path: Path, seconds: float = 120) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_a_write_removes_only_old_unlocked_temp_files_of_its_file(tmp_path: Path) -> None:
    target = tmp_path / "builders.toml"
    old, fresh, held, other = (tmp_path / name for name in (
        ".builders.toml.old1.tmp", ".builders.toml.new1.tmp", ".builders.toml.held.tmp", ".runs.json.old2.tmp"))
    for path in (old, fresh, held, other):
        path.write_bytes(b"x")
    for path in (old, held, other):
        _backdate(path)
    with exclusive_lock(held):  # a live writer, however slow
        atomic_write(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (target, fresh, held, other))
    assert target.read_bytes() == b"new"


def test_a_write_through_a_link_cleans_beside_the_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "targets.json"
    (tmp_path / "targets.json").symlink_to(target)
    left = tmp_path / "real" / ".targets.json.old1.tmp"
    left.write_bytes(b"x")
    _backdate(left)
    atomic_write(tmp_path / "targets.json", b"{}")
    assert not left.exists() and target.read_bytes() == b"{}"


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


def test_a_held_lock_keeps_others_out_until_released(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "x.lock"  # folders are made as needed
    first = try_lock(path)
    assert first is not None
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert fcntl.fcntl(first.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # a build started meanwhile does not inherit it
    assert try_lock(path) is None  # flock is per open file: a second one in the same process is kept out too
    first.release()
    first.release()  # twice is harmless
    with exclusive_lock(path) as again:
        assert try_lock(path) is None
    assert not again.held
    later = try_lock(path)
    assert later is not None
    later.release()


def test_a_blocking_lock_waits_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = try_lock(path)
    assert holder is not None
    order: list[str] = []

    def wait_for_it() -> None:
        with exclusive_lock(path):
            order.append("waiter")

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # the lock is held: it cannot have got past it, however long it had
    order.append("holder")
    holder.release()
    waiter.join(10)
    assert order == ["holder", "waiter"]


def test_a_stamp_changes_with_each_atomic_write_and_is_zero_for_no_file(tmp_path: Path) -> None:
    path = tmp_path / "builders.toml"
    assert files.stamp(path) == (0, 0, 0)
    files.atomic_write(path, b"a = 1\n")
    first = files.stamp(path)
    files.atomic_write(path, b"a = 1\n")  # the same bytes: a new file all the same
    assert first != (0, 0, 0) and files.stamp(path) != first
