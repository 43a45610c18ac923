"""Run the CLI in-process, as a user would from a shell, and capture what it prints."""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
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
