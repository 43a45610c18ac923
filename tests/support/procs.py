"""Process-table checks for tests that must leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.waiting import wait_for


def zombie_children() -> list[int]:
    """Zombie children of this process (started and never reaped)."""
    zombies = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                zombies.append(int(entry.name))
    return zombies



def descendants(root: int) -> set[int]:
    """Every live process below `root` (not `root` itself), from /proc."""
    from acrtask.process import _proc_table, _tree

    table = _proc_table() or {}
    return {pid for pid in _tree(table, [root]) if pid != root and table[pid].state not in ("Z", "X")}


def marked_processes(marker: str) -> list[str]:
    """Live processes whose command line contains `marker` (zombies have an empty cmdline)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def wait_gone(marker: str, within: float = 3.0) -> list[str]:
    """The processes marked `marker` still there after waiting up to `within` seconds for them to end."""
    try:
        wait_for(lambda: not marked_processes(marker), within, f"the processes marked {marker!r} to end")
    except AssertionError:
        pass  # the caller shows which are left
    return marked_processes(marker)
