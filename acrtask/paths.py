"""Where acrtask keeps its files: $ACRTASK_HOME, else the XDG state folder."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    explicit = os.environ.get("ACRTASK_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "acrtask"


def state_db() -> Path:
    return home() / "state.db"


def runs_dir() -> Path:
    return home() / "runs"
