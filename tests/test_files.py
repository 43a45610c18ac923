"""files.py: whole-or-nothing writes through symlinks, and the temporary files of killed writers (what
builders.toml is written with; the tasks live in the state database, tests/test_state_*.py)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from acrtask.files import atomic_write, remove_stale_temp_files


def _backdate(path: Path, seconds: float = 120) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_only_old_unlocked_temp_files_are_stale(tmp_path: Path) -> None:
    target = tmp_path / "builders.toml"
    old, fresh, held, other = (tmp_path / name for name in (
        ".builders.toml.old1.tmp", ".builders.toml.new1.tmp", ".builders.toml.held.tmp", ".runs.json.old2.tmp"))
    for path in (old, fresh, held, other):
        path.write_bytes(b"x")
    for path in (old, held, other):
        _backdate(path)
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_stale_temp_files(target) == [old]
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (fresh, held, other))


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
