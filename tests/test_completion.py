"""Shell completion: the command tree completes as typer's bash protocol asks."""

from __future__ import annotations

import os
import subprocess
import sys


def complete(words: str) -> list[str]:
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1),
           "_ACRTASK_COMPLETE": "complete_bash"}
    done = subprocess.run([sys.executable, "-c", "from acrtask.cli.app import main; main()"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_commands_complete() -> None:
    assert complete("acrtask task wa") == ["watch"]
    assert {"list", "list-runs"} <= set(complete("acrtask task li"))


def test_flags_complete() -> None:
    assert "--base-image-trigger-enabled" in complete("acrtask task update --base-image")
