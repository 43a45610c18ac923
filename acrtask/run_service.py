"""What `task run`, `build`, `run`, `cancel-run` and watch do with runs: queue, execute, detach, cancel.

A `--no-wait` run is executed by a child process (`task execute-run`, hidden), which gets the run's extra
arguments and overrides through its environment (never its argv: they may hold secret values).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from acrtask import process
from acrtask.errors import AcrTaskError
from acrtask.model import Argument, Task
from acrtask.run_record import Run, RunStatus, RunTrigger, RunType
from acrtask.runs import RunStore, pid_alive
from acrtask.service import TaskService
from acrtask.task_changes import RunOverrides

if TYPE_CHECKING:
    from acrtask.runner import Runner

DETACHED_ARGS_ENV = "ACRTASK_RUN_ARGS"  # extra args of a --no-wait run, for the child (not on its argv)
DETACHED_OVERRIDES_ENV = "ACRTASK_RUN_OVERRIDES"  # its -c/-f/--target


class RunService:
    def __init__(self, tasks: TaskService, runs: RunStore, runner: Runner) -> None:
        self.tasks = tasks
        self.runs = runs
        self.runner = runner

    def task(self, name: str, registry: str | None = None) -> Task:
        return self.tasks.show(name, registry)

    def queue(self, task: Task, trigger: RunTrigger, run_type: RunType | None = None) -> Run:
        return self.runner.queue(task, trigger, run_type)

    def execute(self, run: Run, task: Task, emit: Callable[[str], None], cancel: threading.Event,
                extra_args: tuple[Argument, ...] = ()) -> Run:
        return self.runner.execute(run, task, emit, cancel, extra_args)

    def start_detached(self, run: Run, extra_args: tuple[Argument, ...],
                       overrides: RunOverrides | None = None) -> None:
        """`task run --no-wait`: a child process of its own session runs it; this one returns."""
        env = {**os.environ, DETACHED_ARGS_ENV: json.dumps([a.to_dict(reveal_secrets=True) for a in extra_args]),
               DETACHED_OVERRIDES_ENV: json.dumps((overrides or RunOverrides()).to_dict())}
        process.start_detached(
            [sys.executable, "-m", "acrtask", "task", "execute-run", "--run-id", run.run_id, "-o", "none"], env)

    def execute_detached(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run.status is not RunStatus.QUEUED:
            raise AcrTaskError(f"The run '{run_id}' is {run.status.value}, not Queued.")
        args = tuple(Argument.from_dict(a) for a in json.loads(os.environ.pop(DETACHED_ARGS_ENV, "[]")))
        overrides = RunOverrides.from_dict(json.loads(os.environ.pop(DETACHED_OVERRIDES_ENV, "{}")))
        run = self.runs.save(replace(run, pid=os.getpid()))
        return self.execute(run, overrides.apply(self.task(run.task)), lambda line: None, threading.Event(), args)

    def request_cancel(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run.status.is_terminal:
            raise AcrTaskError(f"The run '{run_id}' has already ended ({run.status.value}).")
        if not pid_alive(run.pid):  # nobody will see the marker: settle it here
            return self.runs.finish(run, RunStatus.CANCELED, "canceled by the user")
        self.runs.request_cancel(run_id)
        return run
