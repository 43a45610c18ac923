"""Where acrtask keeps its files: $ACRTASK_HOME, else the XDG state folder."""

from __future__ import annotations

import os
from pathlib import Path

from acrtask.errors import AcrTaskError


def expand_user(text: str) -> Path:
    """`~` and `~user` expanded; ValueError when that home folder is unknown (no such user, no $HOME)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # Python raises this for `~nosuchuser` and a missing home folder
        raise ValueError(f"the home folder in '{text}' is unknown") from None


def home() -> Path:
    explicit = os.environ.get("ACRTASK_HOME")
    try:
        if explicit:
            return expand_user(explicit)
        xdg = os.environ.get("XDG_STATE_HOME")
        base = expand_user(xdg) if xdg else expand_user("~") / ".local" / "state"
    except ValueError as exc:
        raise AcrTaskError(f"Cannot tell where acrtask keeps its files: {exc}.",
                           "Set ACRTASK_HOME (or HOME) to a folder you can write to.") from None
    return base / "acrtask"


def state_db() -> Path:
    return home() / "state.db"


def runs_dir() -> Path:
    return home() / "runs"


def builders_file() -> Path:
    return home() / "builders.toml"


def notify_file() -> Path:
    """The global notification targets (`acrtask notify`)."""
    return home() / "notify.json"
