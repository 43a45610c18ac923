"""Files that several acrtask processes share: writing one so that a reader never sees half of it (temporary
file, fsync, rename, fsync folder), and the lock files they take (an exclusive flock, freed when its holder
closes the file or dies): `exclusive_lock` waits for one, `try_lock` never waits. No other module flocks."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

STALE_TEMP_AGE = 60.0  # seconds: a temporary file this old and unlocked belongs to a writer that died


def _temp_pattern(path: Path) -> tuple[str, str]:
    return f".{path.name}.", ".tmp"


def real_path(path: Path) -> Path:
    """Where `path` really is: a symlink is followed (even a dangling one), so writes go to its target."""
    return Path(os.path.realpath(path))


def stamp(path: Path) -> tuple[int, int, int]:
    """Changes whenever a file written by `atomic_write` is rewritten (a new inode per write); (0, 0, 0) when
    it cannot be seen, so that the caller's read reports why."""
    try:
        found = path.stat()
    except OSError:
        return (0, 0, 0)
    return (found.st_ino, found.st_mtime_ns, found.st_size)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace the file at `path` with `data`, whole or not at all.

    A symlink is written through: the temporary file goes beside the link's target and replaces the
    target, so the link stays a link. Temporary files that killed writers left beside it go first; the
    temporary file is locked while it is written, so no other writer takes one that is still in use.
    """
    target = real_path(path)
    _remove_stale_temp_files(target)
    prefix, suffix = _temp_pattern(target)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=suffix)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


class HeldLock:
    """An exclusive flock held on an open file. Closing the file frees it: `release`, leaving a `with`,
    or the process ending (so a killed holder never leaves a lock behind)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd  # the open lock file, for a holder that writes who it is into it
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            os.close(self.fd)

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_lock_file(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def exclusive_lock(path: Path) -> HeldLock:
    """Wait for an exclusive flock on `path` (created 0600) and hold it: `with exclusive_lock(p): ...`."""
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return HeldLock(fd)


def try_lock(path: Path) -> HeldLock | None:
    """An exclusive flock on `path` (created 0600) if nobody holds one now, else None; never waits."""
    fd = _open_lock_file(path)
    if not _try_flock(fd):
        os.close(fd)
        return None
    return HeldLock(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _remove_stale_temp_files(target: Path) -> None:
    """Remove the temporary files of `target` left by writers that were killed mid-write: only those older
    than STALE_TEMP_AGE that nobody holds locked."""
    prefix, suffix = _temp_pattern(target)
    now = time.time()
    try:
        candidates = [p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)]
    except OSError:
        return
    for candidate in candidates:
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or not ours to touch
        try:
            if now - os.fstat(fd).st_mtime < STALE_TEMP_AGE:
                continue
            if not _try_flock(fd):
                continue  # a live writer still holds it
            candidate.unlink(missing_ok=True)
        except OSError:
            continue  # cannot be removed: leave it
        finally:
            os.close(fd)
