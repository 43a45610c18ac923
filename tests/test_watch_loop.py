"""Watch's driver (acrtask/watch/loop.py) through its public API, with a scripted registry and an executor
that records what it was asked to run: the state it reads and writes, its lock, its threads, a hostile day
(no file descriptors, a full disk, a run whose process was killed) and its shutdown. What it decides is
table-tested in tests/test_watch_scheduler.py; real builds are in tests/integration/test_watch.py."""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from acrtask.cli.watch_view import PlainView
from acrtask.errors import AcrTaskError
from acrtask.model import SourceTrigger, Step, Task, Trigger
from acrtask.recovery import QUEUED_GRACE, FollowedRuns
from acrtask.reference import ImageRef
from acrtask.run_record import Run, RunStatus, RunTrigger, TriggerKind
from acrtask.runs import RunStore
from acrtask.state import Database, StateStore
from acrtask.triggers import BaseKey
from acrtask.watch.commits import CommitPoller
from acrtask.watch.events import TasksChanged, TasksLoaded
from acrtask.watch.loop import Watcher, WatchOptions
from acrtask.watch.scheduler import Scheduler
from acrtask.watch.taskstate import TaskState
from tests.support.tasks import NEW, OLD, P_NEW, P_OLD, dep, task
from tests.support.watch_fakes import (
    BASE,
    KEY,
    LogLines,
    RecordingExecutor,
    ScriptedRegistry,
    WatchThread,
    make,
    stores,
)


def test_one_head_per_distinct_base_and_each_task_triggered_once(tmp_path: Path) -> None:
    registry = ScriptedRegistry(NEW, P_NEW)
    watcher, executor, _ = make(tmp_path, [task("app-one", [dep(BASE)]), task("app-two", [dep(BASE)])], registry)
    assert watcher.run() == 0
    assert registry.heads == [KEY]
    assert isinstance(executor, RecordingExecutor)
    assert sorted(name for name, _ in executor.order) == ["app-one", "app-two"]
    assert all(t.kind is TriggerKind.BASE_IMAGE_UPDATE and t.old_digest == OLD for _, t in executor.order)


def test_a_platform_lookup_failure_is_reported_and_the_loop_goes_on(tmp_path: Path) -> None:
    watcher, executor, view = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, fail_platform=True))
    assert watcher.run() == 0
    assert isinstance(executor, RecordingExecutor) and executor.order == []
    assert any("platform manifests could not be read: registry went away" in line for line in view.lines)
    assert watcher.snapshot().bases[0].error.startswith("moved to")


def test_an_unchanged_platform_records_the_new_index_and_runs_nothing(tmp_path: Path) -> None:
    watcher, executor, _ = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_OLD))
    assert watcher.run() == 0
    assert isinstance(executor, RecordingExecutor) and executor.order == []
    recorded = StateStore(Database(tmp_path / "state.db")).get("app-one").step.dependencies[0]
    assert (recorded.digest, recorded.platform_digest) == (NEW, P_OLD)


def test_watching_is_said_after_the_first_check_and_before_the_run_it_triggered(tmp_path: Path) -> None:
    watcher, _, view = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_NEW))
    assert watcher.run() == 0
    said = [line.split(" ")[0] for line in view.lines]
    assert said == ["Schedule:", "Watching", "Queued", "Started", "Run"], view.lines


def test_a_second_watch_on_the_same_state_is_refused(tmp_path: Path) -> None:
    first, executor, view = make(tmp_path, [], ScriptedRegistry(NEW), once=False)
    with WatchThread(first) as watching:
        watching.wait_until(view.watching, "the first watch to start")
        second = Watcher(first.state, first.runs, ScriptedRegistry(NEW), executor, LogLines(), WatchOptions(once=True))
        with pytest.raises(AcrTaskError, match="Another acrtask watch"):
            second.run()


def test_the_watch_lock_is_let_go_when_watch_ends(tmp_path: Path) -> None:
    first, executor, _ = make(tmp_path, [], ScriptedRegistry(NEW))
    assert first.run() == 0
    second = Watcher(first.state, first.runs, ScriptedRegistry(NEW), executor, LogLines(), WatchOptions(once=True))
    assert second.run() == 0


def test_a_task_whose_context_vanished_does_not_stop_the_watch(tmp_path: Path) -> None:
    gone = Task(name="gone-task", step=Step(context_path=str(tmp_path / "vanished"), image_names=("r.io/a:1",)),
                trigger=Trigger(sources=(SourceTrigger(repository_url=str(tmp_path / "vanished"), branch="main"),)))
    poller = CommitPoller(lambda location, branch: "0" * 40, interval=1)
    assert poller.due([gone], now=10.0) == []  # logged, not raised


def test_watch_reads_only_what_other_processes_changed(tmp_path: Path) -> None:
    state, _ = stores(tmp_path, [task("app-one", [dep(BASE)]), task("app-two", [dep(BASE)]), task("app-three", None)])
    calls = {"snapshot": 0, "changes_since": 0}
    for name in calls:
        real = getattr(state, name)

        def counted(*args, _real=real, _name=name):  # noqa: ANN002, ANN202
            calls[_name] += 1
            return _real(*args)

        setattr(state, name, counted)
    reader, scheduler = TaskState(state), Scheduler(WatchOptions())
    loaded = reader.everything()
    assert isinstance(loaded, TasksLoaded) and sorted(loaded.tasks) == ["app-one", "app-three", "app-two"]
    assert reader.changes() is None
    assert calls == {"snapshot": 1, "changes_since": 0}  # nobody wrote: not even the change notes are read

    other = StateStore(Database(tmp_path / "state.db"))  # another process
    other.record_dependencies("app-three", (dep("reg.local:5000/other:2"),))
    with other.transaction() as tx:
        tx.delete("app-two")
    changed = reader.changes()
    assert calls == {"snapshot": 1, "changes_since": 1}
    assert isinstance(changed, TasksChanged) and sorted(changed.changed) == ["app-three", "app-two"]
    for event in (loaded, changed):
        list(scheduler.handle(event, now=100.0))
    assert sorted(scheduler.tasks) == ["app-one", "app-three"]
    assert scheduler.tasks["app-three"].step.dependencies == (dep("reg.local:5000/other:2"),)
    assert [i.task for i in scheduler.plan.interests[KEY]] == ["app-one"]
    assert scheduler.tags.next_check[BaseKey("reg.local:5000", "other", "2")] == 100.0  # a new base: checked at once


# -- a hostile day: no file descriptors, a full disk, a run whose process was killed ------------------------


def watching(tmp_path: Path, registry: ScriptedRegistry) -> tuple[WatchThread, RecordingExecutor, LogLines]:
    """A long-running watch (not --once) of one task on BASE, retrying failed steps within milliseconds."""
    settings = WatchOptions(poll_min=3600, poll_max=3600, retry_first=0.01, foreign_scan_interval=0.01)
    watcher, executor, view = make(tmp_path, [task("app-one", [dep(BASE)])], registry, options=settings)
    assert isinstance(executor, RecordingExecutor)
    return WatchThread(watcher), executor, view


@contextmanager
def failing_run_records(error: Callable[[Path], Exception]) -> Iterator[tuple[threading.Event, list[int]]]:
    """Every new run record fails with `error(database path)` while the event is set; each try is counted."""
    from acrtask.state.runs import RunRecords

    failing, tries = threading.Event(), []
    failing.set()
    original = RunRecords.create

    def create(self: RunRecords, make):  # noqa: ANN001, ANN202
        if failing.is_set():
            tries.append(1)
            raise error(self.db.path)
        return original(self, make)

    RunRecords.create = create  # type: ignore[method-assign]
    try:
        yield failing, tries
    finally:
        RunRecords.create = original  # type: ignore[method-assign]


def queue_while_failing(tmp_path: Path, error: Callable[[Path], Exception]) -> tuple[Watcher, RecordingExecutor,
                                                                                     list[str]]:
    """A watch that must queue a run while records cannot be written: three tries, then the fault clears.
    Returns the watcher, what it ran, and its ERROR lines."""
    with failing_run_records(error) as (failing, tries):
        thread, executor, view = watching(tmp_path, ScriptedRegistry(NEW, P_NEW))
        with thread:
            thread.wait_until(lambda: len(tries) >= 3, "three tries to queue the run")
            assert executor.order == [] and thread.watcher.runs.all() == []  # the run was not started
            failing.clear()  # descriptors, or space, are back
            thread.wait_until(lambda: bool(executor.order), "the run, once the fault clears")
    return thread.watcher, executor, [line for line in view.lines if line.startswith("ERROR")]


def test_no_file_descriptors_for_the_run_counter_is_one_error_and_the_run_is_queued_later(tmp_path: Path) -> None:
    """What the state database says when no descriptor is left for it (SQLite's CANTOPEN, checked against the
    process's descriptors)."""
    from acrtask.state.db import _no_descriptors

    _, executor, errors = queue_while_failing(tmp_path, _no_descriptors)
    assert len(errors) == 1, errors
    assert "Could not queue a run of app-one" in errors[0] and "too many open files" in errors[0]
    assert f"{tmp_path / 'state.db'}" in errors[0] and "Close some" not in errors[0]  # the hint is the loop's
    assert [name for name, _ in executor.order] == ["app-one"]
    assert executor.order[0][1].kind is TriggerKind.BASE_IMAGE_UPDATE


class FailingFirst(ScriptedRegistry):
    """Checks fail with `error` (raised by the check itself) while `failing` is set."""

    def __init__(self, error: Exception) -> None:
        super().__init__(NEW, P_NEW)
        self.error = error
        self.failing = threading.Event()
        self.failing.set()
        self.failed = 0

    def digests(self, keys: list[BaseKey]) -> dict[BaseKey, str | Exception]:
        if self.failing.is_set():
            self.failed += 1
            raise self.error
        return super().digests(keys)


def test_no_file_descriptors_for_a_check_is_one_error_and_the_check_is_retried(tmp_path: Path) -> None:
    registry = FailingFirst(OSError(errno.EMFILE, "Too many open files"))
    thread, executor, view = watching(tmp_path, registry)
    with thread:
        thread.wait_until(lambda: registry.failed >= 3, "three failed checks")
        registry.failing.clear()
        thread.wait_until(lambda: bool(executor.order), "the run, once the check works")
    errors = [line for line in view.lines if line.startswith("ERROR")]
    assert len(errors) == 1 and "Too many open files" in errors[0], errors
    assert not any(line.startswith("Check of") for line in view.lines)  # the one line said it
    assert any(line == "Registry reg.local:5000 is back: its tags are checked again." for line in view.lines)
    assert [name for name, _ in executor.order] == ["app-one"]


def test_a_full_disk_when_queuing_is_one_error_nothing_started_and_retried_when_space_returns(tmp_path: Path) -> None:
    """What the state database says on a full disk (SQLITE_FULL); a real full tmpfs is in test_state_faults.py."""
    from acrtask.state.db import _disk_full

    watcher, executor, errors = queue_while_failing(tmp_path, _disk_full)
    assert len(errors) == 1, errors
    assert "Could not queue a run of app-one" in errors[0] and "the disk is full" in errors[0]
    assert "It was not started" in errors[0]
    assert [run.status for run in watcher.runs.all()] == [RunStatus.SUCCEEDED]


class FullDisk(RecordingExecutor):
    def queue(self, task: Task, trigger: RunTrigger) -> Run:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_under_watch_once_fails_the_run_and_exits_1(tmp_path: Path) -> None:
    watcher, executor, view = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_NEW),
                                   executor=FullDisk)
    assert watcher.run() == 1
    assert isinstance(executor, FullDisk) and executor.order == []
    assert [line for line in view.lines if line.startswith("ERROR")] == [
        "ERROR: Could not queue a run of app-one (base image reg.local:5000/base:1 changed: aaaaaaaaaaaa -> "
        "bbbbbbbbbbbb): [Errno 28] No space left on device. It was not started; free the disk or raise the "
        "open-file limit, and run again."]


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)  # reaped by run(): that pid is gone


def test_a_run_of_another_process_that_dies_while_watch_runs_is_recorded_error(tmp_path: Path) -> None:
    thread, _, view = watching(tmp_path, ScriptedRegistry(OLD))
    runs = thread.watcher.runs
    with thread:
        thread.wait_until(view.watching, "the first check")
        # Another process (a `task run` in another shell) records a Running run, then is killed.
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            run = runs.create(task("manual-task", None), RunTrigger())
            runs.save(replace(run, status=RunStatus.RUNNING, pid=other.pid))
            thread.wait_until(lambda: run.run_id in thread.watcher.followed.open, "watch to follow the run")
            assert runs.get(run.run_id).status is RunStatus.RUNNING  # alive: left alone
        finally:
            other.kill()
            other.wait(10)
        thread.wait_until(lambda: runs.get(run.run_id).status is RunStatus.ERROR, "the dead run recorded Error")
    recorded = runs.get(run.run_id)
    assert recorded.error == f"interrupted: the acrtask process running it (pid {other.pid}) stopped"
    assert f"Run {run.run_id} of manual-task was interrupted: its process (pid {other.pid}) is gone; recorded Error." \
        in view.lines


def test_a_push_by_another_process_checks_its_image_at_once_naming_the_run(tmp_path: Path) -> None:
    registry = ScriptedRegistry(OLD, P_OLD)
    thread, executor, view = watching(tmp_path, registry)
    runs = thread.watcher.runs
    with thread:
        thread.wait_until(view.watching, "the first check")
        producer = runs.create(task("producer", None, (BASE,)), RunTrigger())
        registry.digest, registry.platform = NEW, P_NEW  # what the producer pushed
        runs.save(replace(producer, pid=1, status=RunStatus.SUCCEEDED,
                          output_images=(ImageRef("reg.local:5000", "base", "1", NEW),)))
        thread.wait_until(lambda: bool(executor.order), "the dependent's run")
    assert executor.order[0][1].upstream_run_id == producer.run_id


def test_runs_of_other_processes_are_read_whatever_order_their_records_appear_in(tmp_path: Path) -> None:
    runs = RunStore(Database(tmp_path / "state.db"), tmp_path / "runs")
    followed = FollowedRuns(runs)
    followed.start([])
    pushed = []
    for _ in range(30):
        run = runs.create(task("producer", None, (BASE,)), RunTrigger())
        pushed.append(replace(run, pid=1, status=RunStatus.SUCCEEDED,
                              output_images=(ImageRef("reg.local:5000", "base", "1", NEW),)))
    for run in reversed(pushed):  # newest record written first: ids appear out of order
        runs.save(run)
    assert [run.run_id for run in followed.pushed(own=set())] == [run.run_id for run in pushed]  # oldest first
    assert followed.open == set()


def test_a_queued_run_whose_starter_is_gone_gets_a_grace_period(tmp_path: Path) -> None:
    """`task run --no-wait` records its starter's pid; the detached child writes its own a moment later."""
    runs = RunStore(Database(tmp_path / "state.db"), tmp_path / "runs")
    followed = FollowedRuns(runs)
    followed.start([])
    queued = replace(runs.create(task("t", None), RunTrigger()), pid=dead_pid())
    runs.save(queued)
    followed.pushed(own=set())
    assert followed.abandoned(now=100.0) == []
    assert followed.abandoned(now=100.0 + QUEUED_GRACE - 1) == []
    assert runs.get(queued.run_id).status is RunStatus.QUEUED
    (settled,) = followed.abandoned(now=100.0 + QUEUED_GRACE)
    assert settled.run.run_id == queued.run_id and settled.stopped == 0
    assert runs.get(queued.run_id).status is RunStatus.ERROR
    assert followed.open == set()


def test_a_queued_run_taken_over_by_a_live_process_is_left_alone(tmp_path: Path) -> None:
    runs = RunStore(Database(tmp_path / "state.db"), tmp_path / "runs")
    followed = FollowedRuns(runs)
    followed.start([])
    queued = runs.save(replace(runs.create(task("t", None), RunTrigger()), pid=dead_pid()))
    followed.pushed(own=set())
    assert followed.abandoned(now=0.0) == []
    runs.save(replace(queued, status=RunStatus.RUNNING, pid=os.getpid()))  # the detached child took it
    assert followed.abandoned(now=QUEUED_GRACE * 2) == []
    assert runs.get(queued.run_id).status is RunStatus.RUNNING


# -- stopping ------------------------------------------------------------------------------------------------


class UntilCanceled(RecordingExecutor):
    """A build that runs until it is canceled (at most a minute), then is recorded Canceled."""

    def __init__(self, runs: RunStore) -> None:
        super().__init__(runs)
        self.started = threading.Event()

    def execute(self, run: Run, task: Task, emit: Callable[[str], None], cancel: threading.Event) -> Run:
        self.order.append((task.name, run.trigger))
        self.started.set()
        cancel.wait(60)
        return self.runs.finish(replace(run, status=RunStatus.RUNNING), RunStatus.CANCELED, "canceled")


def test_the_grace_period_is_measured_on_the_injected_clock(tmp_path: Path) -> None:
    """Each reading of this clock is 100 s after the last: the 30 s grace period is over at once, so the build
    is canceled without waiting (on the machine's clock, stopping would take 30 s and the join would fail)."""
    ticks = itertools.count(step=100.0)
    options = WatchOptions(poll_min=3600, poll_max=3600, grace_period=30)
    watcher, executor, view = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_NEW),
                                   executor=UntilCanceled, options=options, clock=lambda: next(ticks))
    assert isinstance(executor, UntilCanceled)
    thread = WatchThread(watcher)
    with thread:
        thread.wait_until(executor.started.is_set, "the build to start")
    (run,) = watcher.runs.all()
    assert run.status is RunStatus.CANCELED
    assert f"Run {run.run_id} of app-one ended Canceled on shutdown." in view.lines


def test_a_log_on_a_full_disk_loses_lines_but_not_the_watch() -> None:
    import io

    class Log(io.StringIO):
        full = True

        def write(self, text: str) -> int:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(text)

    log = Log()
    view = PlainView(log)
    view.event("ERROR: Could not queue a run of app-one: [Errno 28] No space left on device.")  # raises nothing
    log.full = False
    view.event("Queued run ca1 of app-one: manual run")
    assert log.getvalue().endswith(" Queued run ca1 of app-one: manual run\n")
    assert "Could not queue" not in log.getvalue()
