"""A real Runner for tests of what a run does before and around its build: a state database in the test's
folder, the builder the test gives, no git, and no registry (a FROM scratch build asks none)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acrtask.model import Run, Task
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.runner import Runner
from acrtask.runs import RunStore
from acrtask.state import Database, StateStore
from acrtask.workspace import Workspace


class NoRegistry:
    def resolve(self, ref: ImageRef, platform: Platform | None = None) -> Any:
        raise AssertionError("a FROM scratch build resolves nothing")


def offline_runner(folder: Path, builder_for: Callable[[Task, Run], Any]) -> tuple[Runner, threading.Event]:
    """(the runner, the cancel event its runs watch)."""
    db = Database(folder / "state.db")
    return Runner(StateStore(db), RunStore(db, folder / "runs"), NoRegistry(), builder_for,
                  lambda task: Workspace(), environ={}), threading.Event()
