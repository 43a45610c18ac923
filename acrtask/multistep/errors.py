"""The error of a task file that cannot be used, with the line it is on."""

from __future__ import annotations

from acrtask.errors import ValidationError


class TaskFileError(ValidationError):
    """A task file that cannot be used; `line` (1-based) is where, when known."""

    def __init__(self, message: str, hint: str | None = None, line: int | None = None) -> None:
        super().__init__(message, hint)
        self.line = line
