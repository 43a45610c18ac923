"""Run records and logs, beside the state file: `runs/<id>.json` and `runs/<id>.log`.

Run ids come from `runs/counter`, taken under its own lock (not the state file's: rewriting every
task to count a run would cost seconds with thousands of tasks), so they increase and are never
reused, even after old runs are pruned. Each record is replaced atomically on every change.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from acrtask.errors import NotFoundError, StateError
from acrtask.files import atomic_write
from acrtask.model import OutputImage, Run, RunStatus, RunTrigger, Task, format_time

RUN_ID_PREFIX = "ca"
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
    def __init__(self, folder: Path, keep: int = DEFAULT_KEEP, clock: Clock = _utcnow) -> None:
        self.folder = folder
        self.keep = keep
        self.clock = clock

    def now(self) -> str:
        return format_time(self.clock())

    def create(self, task: Task, trigger: RunTrigger) -> Run:
        """A new Queued run of `task`, with the next id."""
        number = self._next_number()
        run = Run(run_id=f"{RUN_ID_PREFIX}{number}", task=task.name, status=RunStatus.QUEUED, trigger=trigger,
                  create_time=self.now(), platform=task.platform, pid=os.getpid(), registry=task.login_server)
        self.save(run)
        self.prune()
        return run

    def _next_number(self) -> int:
        """The next run number, from runs/counter under its own lock (not the whole state file)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder / "counter.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = self.folder / "counter"
            try:
                number = int(path.read_text())
            except (FileNotFoundError, ValueError):  # a new home, or a counter lost by hand
                number = max(self._numbers(), default=0)
            number += 1
            atomic_write(path, str(number).encode())
            return number
        finally:
            os.close(fd)

    def save(self, run: Run) -> Run:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(run.to_dict(), indent=2, sort_keys=True).encode("utf-8")
        atomic_write(self._record(run.run_id), data)
        return run

    def finish(self, run: Run, status: RunStatus, error: str | None = None,
               output_images: tuple[OutputImage, ...] | None = None) -> Run:
        outputs = run.output_images if output_images is None else output_images
        return self.save(replace(run, status=status, error=error, finish_time=self.now(), output_images=outputs))

    def get(self, run_id: str) -> Run:
        path = self._record(run_id)
        try:
            return self._read(path)
        except FileNotFoundError:
            raise NotFoundError(f"The run '{run_id}' could not be found.",
                                "Run 'acrtask task list-runs' to see the runs there are.") from None

    def all(self) -> list[Run]:
        """Every recorded run, newest first."""
        if not self.folder.is_dir():
            return []
        runs = []
        for path in self.folder.glob(f"{RUN_ID_PREFIX}*.json"):
            try:
                runs.append(self._read(path))
            except FileNotFoundError:  # pruned while we listed
                continue
        return sorted(runs, key=lambda run: run.number, reverse=True)

    def find(self, task: str | None = None, status: RunStatus | None = None, top: int | None = 15) -> list[Run]:
        runs = [r for r in self.all() if (task is None or r.task == task) and (status is None or r.status is status)]
        return runs[:top] if top is not None else runs

    def last(self, task: str | None = None) -> Run:
        runs = self.find(task=task, top=1)
        if not runs:
            raise NotFoundError("Could not find the last created run.",
                                "Start one with 'acrtask task run -n NAME'.")
        return runs[0]

    def log_path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.log"

    def open_log(self, run_id: str):  # noqa: ANN201 - a text file object
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.log_path(run_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def prune(self) -> None:
        """Keep the newest `keep` finished runs; never drop a queued or running one."""
        numbered = [(number, self._record(f"{RUN_ID_PREFIX}{number}")) for number in self._numbers()]
        if len(numbered) <= self.keep:
            return  # the usual case: nothing to read
        numbered.sort(reverse=True)
        for _, path in numbered[self.keep:]:
            try:
                run = self._read(path)
            except (FileNotFoundError, StateError):
                continue
            if run.status.is_terminal:
                self._record(run.run_id).unlink(missing_ok=True)
                self.log_path(run.run_id).unlink(missing_ok=True)

    def process_tag(self, run_id: str) -> str:
        """What a run's build processes carry in ACRTASK_RUN_ID: unique across homes (ids are not)."""
        return f"{self.folder.resolve()}:{run_id}"

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

    def _numbers(self) -> list[int]:
        """The numbers of the recorded runs, from the file names alone."""
        digits = (path.stem[len(RUN_ID_PREFIX):] for path in self.folder.glob(f"{RUN_ID_PREFIX}*.json"))
        return [int(d) for d in digits if d.isdigit()]

    def _record(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    @staticmethod
    def _read(path: Path) -> Run:
        try:
            return Run.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"Run record {path} is corrupt: {exc}.", "Delete the file; it is only history.") \
                from exc


class _TaskLock:
    """An exclusive lock per task across processes; waiting for it can be cut short by `cancel`."""

    def __init__(self, path: Path, cancel: threading.Event) -> None:
        self.path = path
        self.cancel = cancel
        self.fd: int | None = None

    def __enter__(self) -> _TaskLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if self.cancel.wait(0.2):
                    return self  # the caller sees cancel set and does not build

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
