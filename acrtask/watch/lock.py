"""The watch lock: one watch per state file (two would each queue a run for the same change)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from acrtask.errors import AcrTaskError


def hold_watch_lock(state_path: Path) -> int:
    """One watch per state file (two would each queue a run for the same change): the lock's descriptor."""
    path = state_path.with_name("watch.lock")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AcrTaskError(f"Another acrtask watch (pid {holder}) is already watching {state_path}.",
                           "Stop it first, or give this one its own ACRTASK_HOME.") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd
