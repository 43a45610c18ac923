"""The watch lock: one watch per state file (two would each queue a run for the same change)."""

from __future__ import annotations

import os
from pathlib import Path

from acrtask.errors import AcrTaskError
from acrtask.files import HeldLock, try_lock


def hold_watch_lock(state_path: Path) -> HeldLock:
    """Take it (held until its `release()`), or say which watch holds it."""
    path = state_path.with_name("watch.lock")
    lock = try_lock(path)
    if lock is None:
        holder = path.read_bytes()[:32].decode(errors="replace").strip() or "unknown"
        raise AcrTaskError(f"Another acrtask watch (pid {holder}) is already watching {state_path}.",
                           "Stop it first, or give this one its own ACRTASK_HOME.")
    os.ftruncate(lock.fd, 0)
    os.write(lock.fd, str(os.getpid()).encode())
    return lock
