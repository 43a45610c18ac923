"""Process-table checks for tests that must leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path


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
