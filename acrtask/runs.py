"""Runs: their records in the state database, their logs as files beside it (`runs/<id>.log`).

Run ids come from a counter in the database, taken in the same transaction that records the new
run, so they increase and are never reused, even after old runs are pruned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from acrtask.errors import NotFoundError
from acrtask.files import HeldLock, try_lock
from acrtask.model import OutputImage, Run, RunStatus, RunTrigger, Task, format_time
from acrtask.runids import process_tag
from acrtask.state.db import Database
from acrtask.state.runs import RunRecords

__all__ = ["DEFAULT_KEEP", "RunStore", "pid_alive"]

DEFAULT_KEEP = 1000

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def pid_alive(pid: int | None) -> bool:
    """Whether the process that recorded a run still runs (a run of a dead one was interrupted)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    def __init__(self, db: Database, folder: Path, keep: int = DEFAULT_KEEP, clock: Clock = _utcnow) -> None:
        self.records = RunRecords(db)
        self.folder = folder  # logs, cancel markers and per-task locks
        self.keep = keep
        self.clock = clock

    def now(self) -> str:
        return format_time(self.clock())

    def create(self, task: Task, trigger: RunTrigger) -> Run:
        """A new Queued run of `task`, with the next id."""
        run = self.records.create(lambda run_id: Run(
            run_id=run_id, task=task.name, status=RunStatus.QUEUED, trigger=trigger, create_time=self.now(),
            platform=task.platform, pid=os.getpid(), registry=task.login_server))
        self.prune()
        return run

    def save(self, run: Run) -> Run:
        return self.records.save(run)

    def finish(self, run: Run, status: RunStatus, error: str | None = None,
               output_images: tuple[OutputImage, ...] | None = None) -> Run:
        outputs = run.output_images if output_images is None else output_images
        return self.save(replace(run, status=status, error=error, finish_time=self.now(), output_images=outputs))

    def get(self, run_id: str) -> Run:
        run = self.records.get(run_id)
        if run is None:
            raise NotFoundError(f"The run '{run_id}' could not be found.",
                                "Run 'acrtask task list-runs' to see the runs there are.")
        return run

    def all(self) -> list[Run]:
        """Every recorded run, newest first."""
        return self.records.find(top=None)

    def find(self, task: str | None = None, status: RunStatus | None = None, top: int | None = 15) -> list[Run]:
        return self.records.find(task, status, top)

    def last(self, task: str | None = None) -> Run:
        runs = self.find(task=task, top=1)
        if not runs:
            raise NotFoundError("Could not find the last created run.",
                                "Start one with 'acrtask task run -n NAME'.")
        return runs[0]

    def unfinished(self) -> list[Run]:
        """Queued and Running runs, oldest first."""
        return self.records.unfinished()

    def after(self, number: int) -> list[Run]:
        """Runs created after run number `number`, oldest first."""
        return self.records.after(number)

    def several(self, run_ids: set[str]) -> list[Run]:
        return self.records.several(run_ids)

    def data_version(self) -> int:
        """Changes when another connection commits: what watch checks before it looks for new runs."""
        return self.records.db.data_version()

    def log_path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.log"

    def open_log(self, run_id: str):  # noqa: ANN201 - a text file object
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.log_path(run_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def prune(self) -> None:
        """Keep the newest `keep` runs; never drop a queued or running one. Their logs go with them."""
        for run_id in self.records.prune(self.keep):
            self.log_path(run_id).unlink(missing_ok=True)

    def process_tag(self, run_id: str) -> str:
        """What a run's build processes carry in ACRTASK_RUN_ID: unique across homes (ids are not)."""
        return process_tag(str(self.folder.resolve()), run_id)

    def task_lock(self, task: str, cancel: threading.Event) -> _TaskLock:
        return _TaskLock(self.folder / "locks" / f"{task}.lock", cancel)

    def request_cancel(self, run_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._cancel_marker(run_id).touch()

    def cancel_requested(self, run_id: str) -> bool:
        return self._cancel_marker(run_id).exists()

    def clear_cancel(self, run_id: str) -> None:
        self._cancel_marker(run_id).unlink(missing_ok=True)

    def _cancel_marker(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.cancel"


class _TaskLock:
    """An exclusive lock per task across processes; waiting for it can be cut short by `cancel`."""

    def __init__(self, path: Path, cancel: threading.Event) -> None:
        self.path = path
        self.cancel = cancel
        self.lock: HeldLock | None = None

    def __enter__(self) -> _TaskLock:
        # Asked again every 0.2 s rather than waited for, so that a cancel is seen while another run builds.
        while (held := try_lock(self.path)) is None:
            if self.cancel.wait(0.2):
                return self  # the caller sees cancel set and does not build
        self.lock = held
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            self.lock.release()
