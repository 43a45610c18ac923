"""Run the CLI in-process, as a user would from a shell, and capture what it prints."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acrtask.cli.app import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    stdin = sys.stdin
    sys.stdin = io.StringIO()  # never a terminal: prompts must not wait
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.stdin = stdin
    return Result(code, out.getvalue(), err.getvalue())


def state_dump(home: Path) -> list[str]:
    """Everything the state database holds, as SQL: equal dumps mean nothing changed."""
    conn = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def stored_task(home: Path, name: str) -> dict[str, Any]:
    """A task's document as stored (secrets included), read straight from the database."""
    conn = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT document FROM tasks WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return json.loads(row[0])  # type: ignore[no-any-return]
