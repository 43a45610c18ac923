"""What watch's scheduler is told (events) and what it answers (decisions): plain frozen values.

The driver (loop.py) puts events on its queue from other threads (a registry's checks, a finished build,
a webhook body), feeds each one to the scheduler (scheduler.py) with the time, and carries out the
decisions it gets back. A decision whose outcome the scheduler needs is answered by another event: a
`QueueRun` by `RunQueued` or `QueueFailed`, a `RecordRefreshes` by `RefreshesRecorded`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from acrtask.model import Task
from acrtask.run_record import Run, RunTrigger
from acrtask.triggers import BaseKey, Refresh
from acrtask.watch.checks import CheckResult


@dataclass(frozen=True)
class PushEvent:
    """A tag that was pushed, as a registry's webhook tells it. `host` is the registry's address when the
    payload says it."""

    source: str  # distribution | acr | dockerhub | harbor
    repository: str
    tag: str
    host: str | None = None
    digest: str | None = None


# -- events: what happened ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TasksLoaded:
    """Every task, read afresh (at start, or when the change notes since the last read are gone)."""

    tasks: Mapping[str, Task]


@dataclass(frozen=True)
class TasksChanged:
    """Only these tasks changed since the last read (None: deleted); a run recorded new digests, another
    process created or updated a task."""

    changed: Mapping[str, Task | None]


@dataclass(frozen=True)
class CommitSeen:
    """A git context's branch head moved (read by the driver, which runs git)."""

    task: str
    trigger: RunTrigger


@dataclass(frozen=True)
class Tick:
    """Time passed: check the tags that are due, fire timers, try deferred triggers again, start what may
    start. `commits` are the branch heads that moved since the last tick, fired after the timers."""

    commits: tuple[CommitSeen, ...] = ()


@dataclass(frozen=True)
class TagsChecked:
    """A registry's batch of tags came back from its check thread (digests or errors)."""

    result: CheckResult


@dataclass(frozen=True)
class PushSeen:
    """The push events of one webhook body: the tags they name are checked at once (and told in one line)."""

    events: tuple[PushEvent, ...]


@dataclass(frozen=True)
class RunQueued:
    """A `QueueRun` was carried out: the run is recorded Queued."""

    task: str
    run: Run


@dataclass(frozen=True)
class QueueFailed:
    """A `QueueRun` could not be carried out (a full disk, no file descriptors, a locked database)."""

    task: str
    error: Exception


@dataclass(frozen=True)
class RefreshesRecorded:
    """A `RecordRefreshes` was carried out: `tasks` as now recorded; `error` if a write failed (the ones
    before it are in `tasks`)."""

    key: BaseKey
    tasks: Mapping[str, Task]
    error: Exception | None = None


@dataclass(frozen=True)
class RunFinished:
    """A run of this watch ended (its record is written)."""

    run: Run


@dataclass(frozen=True)
class OtherRunPushed:
    """A run of another process (a `task run` in another shell) succeeded: its pushes may be bases."""

    run: Run


@dataclass(frozen=True)
class RunInterrupted:
    """A run whose process died was recorded Error (recovery.py); `stopped` build processes it left behind
    were stopped. `run_again`: found at start, so its trigger is queued again."""

    run: Run
    stopped: int
    run_again: bool


@dataclass(frozen=True)
class Note:
    """A line for the log from another thread (build endpoints, notification results)."""

    message: str


@dataclass(frozen=True)
class Stop:
    """Watch stops: nothing more starts, and runs still queued are canceled."""


@dataclass(frozen=True)
class GraceOver:
    """The grace period after a stop is over: the builds still running are canceled."""


Event = (TasksLoaded | TasksChanged | Tick | TagsChecked | PushSeen | RunQueued | QueueFailed | RefreshesRecorded
         | RunFinished | OtherRunPushed | RunInterrupted | Note | Stop | GraceOver)


# -- decisions: what the driver does ------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """A line for the log."""

    line: str


@dataclass(frozen=True)
class CheckTags:
    """Check these tags of one registry on a thread of its own; each maps to the run that pushed it, if
    acrtask did. The result comes back as `TagsChecked`."""

    registry: str
    batch: Mapping[BaseKey, str | None]


@dataclass(frozen=True)
class RecordRefreshes:
    """Record new digests for tasks whose platform did not move under a moved tag (no run); answer with
    `RefreshesRecorded`."""

    key: BaseKey
    refreshes: tuple[Refresh, ...]


@dataclass(frozen=True)
class QueueRun:
    """Record a Queued run of `task`; answer with `RunQueued` or `QueueFailed`."""

    task: Task
    trigger: RunTrigger


@dataclass(frozen=True)
class StartRun:
    """Build the queued run now, on a worker thread; its end comes back as `RunFinished`."""

    run: Run
    task: Task


@dataclass(frozen=True)
class CancelQueued:
    """Record a run that never started Canceled."""

    run: Run
    reason: str


@dataclass(frozen=True)
class CancelRunning:
    """Cancel the build running for `task` (it ends Canceled, told by `RunFinished`)."""

    task: str


Decision = Say | CheckTags | RecordRefreshes | QueueRun | StartRun | CancelQueued | CancelRunning
