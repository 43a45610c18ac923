"""Run a task file's steps in `when` order: each step in its own thread, as soon as what it waits for is done.

Per step: `startDelay`, then (1 + `repeat`) executions, each retried up to `retries` times after
`retryDelay` seconds, all within the step's `timeout`; `ignoreErrors` lets the run go on after a
failure. A failure that is not ignored, the run's total timeout, or a cancel stops every running step
(their process groups, through process.py) and starts no other. What each step does is
`perform`'s business; this module only schedules, times and records.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from acrtask.errors import AcrTaskError, BuildCanceledError, BuildTimeoutError
from acrtask.model import StepRecord, StepStatus
from acrtask.multistep.document import Loaded
from acrtask.multistep.spec import StepSpec

Log = Callable[[str], None]
_TICK = 0.1  # how often the scheduler looks at the cancel event and the run's deadline


class Ending(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"


@dataclass
class StepContext:
    """What a step's work gets: its log, the event that stops it, and the time it has left."""

    step: StepSpec
    log: Log
    stop: threading.Event
    deadline: float | None  # time.monotonic() by which the step must be done
    record: StepRecord  # filled in by perform: images, output images, dependencies

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BuildTimeoutError(f"Step {self.step.id} is out of time.")
        return left


Perform = Callable[[StepContext], None]


@dataclass
class Outcome:
    ending: Ending
    records: dict[str, StepRecord]
    error: str | None = None  # what ended the run, when it did not succeed


@dataclass
class _State:
    records: dict[str, StepRecord]
    started: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Executor:
    def __init__(self, loaded: Loaded, perform: Perform, log: Log, cancel: threading.Event, *,
                 total_timeout: float | None, now: Callable[[], str],
                 on_change: Callable[[list[StepRecord]], None]) -> None:
        self.loaded = loaded
        self.perform = perform
        self.cancel = cancel
        self.total_timeout = total_timeout
        self.now = now
        self.on_change = on_change
        self.stop = threading.Event()  # set on failure, total timeout or cancel: every step stops
        self._log_lock = threading.Lock()
        self._log = log
        self._finished: queue.SimpleQueue[tuple[str, str | None]] = queue.SimpleQueue()
        self.state = _State({s.id: StepRecord(s.id, s.kind) for s in loaded.file.steps})

    def log(self, line: str) -> None:
        with self._log_lock:  # steps run in threads; one line at a time reaches the run's log
            self._log(line)

    def run(self) -> Outcome:
        deadline = None if self.total_timeout is None else time.monotonic() + self.total_timeout
        outcome: Outcome | None = None
        threads = self._start_ready()
        while any(thread.is_alive() for thread in threads) or not self._finished.empty():
            try:
                step_id, error = self._finished.get(timeout=_TICK)
            except queue.Empty:
                step_id, error = None, None
            if outcome is None:
                outcome = self._check_end(step_id, error, deadline)
                if outcome is not None:
                    self.stop.set()
                else:
                    threads += self._start_ready()
        for thread in threads:
            thread.join()
        final = outcome or Outcome(Ending.SUCCEEDED, {})
        final.records = dict(self.state.records)
        return final

    def _check_end(self, step_id: str | None, error: str | None, deadline: float | None) -> Outcome | None:
        if step_id is not None and error is not None:
            return Outcome(Ending.FAILED, {}, f"Step ID: {step_id} failed: {error}")
        if self.cancel.is_set():
            return Outcome(Ending.CANCELED, {}, "the run was canceled; its steps were stopped")
        if deadline is not None and time.monotonic() >= deadline:
            return Outcome(Ending.TIMEOUT, {}, f"the run did not finish within its {self.total_timeout:g} s "
                                               "timeout; its steps were stopped")
        return None

    def _start_ready(self) -> list[threading.Thread]:
        started = []
        for step in self.loaded.file.steps:
            if step.id in self.state.started:
                continue
            if all(self.state.records[need].status is StepStatus.SUCCESSFUL for need in self.loaded.needs[step.id]):
                self.state.started.add(step.id)
                thread = threading.Thread(target=self._run_step, args=(step,), name=f"step-{step.id}", daemon=True)
                thread.start()
                started.append(thread)
        return started

    def _update(self, step_id: str, **changes: object) -> StepRecord:
        with self.state.lock:
            record = replace(self.state.records[step_id], **changes)  # type: ignore[arg-type]
            self.state.records[step_id] = record
            snapshot = [self.state.records[s.id] for s in self.loaded.file.steps]
        self.on_change(snapshot)
        return record

    def _step_log(self, step: StepSpec) -> Log:
        if self.loaded.sequential:
            return self.log
        return lambda line: self.log(f"[{step.id}] {line}")

    def _run_step(self, step: StepSpec) -> None:
        log = self._step_log(step)
        error: str | None = None
        try:
            if step.start_delay and self.stop.wait(step.start_delay):
                return  # stopped while waiting: the step stays skipped
            where = self.loaded.file.working_directory_of(step) or "the image's"
            self.log(f"Executing step ID: {step.id}. Working directory: '{where}'")
            started = time.monotonic()
            record = self._update(step.id, status=StepStatus.IN_PROGRESS, start_time=self.now())
            context = StepContext(step, log, self.stop, started + step.timeout, record)
            try:
                self._attempts(context)
                status = StepStatus.SUCCESSFUL
            except (AcrTaskError, OSError) as exc:
                error = str(exc)
                if isinstance(exc, BuildTimeoutError):  # say it in the step's terms, not the command's
                    error = (f"Step {step.id} did not finish within its {step.timeout} s timeout and was stopped. "
                             "Raise its timeout, or make it faster.")
                status = StepStatus.FAILED
                if step.ignore_errors and not self.stop.is_set():
                    log(f"Step ID: {step.id} encountered an error: {error}, but is set to ignore errors. "
                        "Continuing...")
                    status = StepStatus.SUCCESSFUL
            elapsed = time.monotonic() - started
            # Said before the record changes: the change lets the steps after this one start.
            self.log(f"Step ID: {step.id} marked as {status} (elapsed time in seconds: {elapsed:.3f})")
            self._update(step.id, status=status, finish_time=self.now(), error=error,
                         images=context.record.images, output_images=context.record.output_images,
                         dependencies=context.record.dependencies)
            if status is StepStatus.SUCCESSFUL:
                error = None
        except Exception as exc:  # a bug in perform: the run must still end, and say why
            error = f"{type(exc).__name__}: {exc}"
            self._update(step.id, status=StepStatus.FAILED, finish_time=self.now(), error=error)
            self.log(f"Step ID: {step.id} marked as {StepStatus.FAILED} ({error})")
        finally:
            self._finished.put((step.id, error))

    def _attempts(self, context: StepContext) -> None:
        step = context.step
        for execution in range(step.repeat + 1):
            if execution:
                context.log(f"Repeating step ID: {step.id} ({execution} of {step.repeat})")
            for attempt in range(step.retries + 1):
                try:
                    self.perform(context)
                    break
                except (BuildTimeoutError, BuildCanceledError):
                    raise  # out of time or stopped: a retry would not help
                except AcrTaskError as exc:
                    if attempt == step.retries:
                        raise
                    context.log(f"Step ID: {step.id} failed: {exc} Retrying in {step.retry_delay} s "
                                f"({attempt + 1} of {step.retries}).")
                    if self.stop.wait(step.retry_delay):
                        raise BuildCanceledError(f"Step {step.id} was stopped before its retry.") from None
