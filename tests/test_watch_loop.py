"""The watch loop's scheduling, driven with a scripted registry and an executor that records what it was
asked to run (real builds are in tests/integration/test_watch.py; these check decisions and order)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from acrtask import triggers
from acrtask.errors import AcrTaskError
from acrtask.model import Run, RunStatus, RunTrigger, Task, TriggerKind
from acrtask.runs import RunStore
from acrtask.state import Database, StateStore
from acrtask.triggers import BaseKey
from acrtask.watch.loop import Watcher, WatchOptions, _Running
from acrtask.watch.view import Snapshot
from tests.support.tasks import NEW, OLD, P_NEW, P_OLD, dep, task

BASE = "reg.local:5000/base:1"
KEY = BaseKey("reg.local:5000", "base", "1")


class ScriptedRegistry:
    def __init__(self, digest: str, platform_digest: str | None = None, fail_platform: bool = False) -> None:
        self.digest, self.platform, self.fail_platform = digest, platform_digest or digest, fail_platform
        self.heads: list[BaseKey] = []

    def digests(self, keys: list[BaseKey]) -> dict[BaseKey, str | Exception]:
        self.heads.extend(keys)
        return {key: self.digest for key in keys}

    def platform_digest(self, key: BaseKey, digest: str, platform: str | None) -> str | None:
        if self.fail_platform:
            raise ConnectionError("registry went away")
        return self.platform

    def cap_circuit(self, seconds: float) -> None:
        self.circuit_cap = seconds


class RecordingExecutor:
    """Records runs in order and finishes them as Succeeded without building anything."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self.order: list[tuple[str, RunTrigger]] = []
        self.release = threading.Event()
        self.release.set()

    def queue(self, task: Task, trigger: RunTrigger) -> Run:
        return self.runs.create(task, trigger)

    def execute(self, run: Run, task: Task, emit, cancel: threading.Event) -> Run:
        self.order.append((task.name, run.trigger))
        self.release.wait(10)
        return self.runs.finish(replace(run, status=RunStatus.RUNNING), RunStatus.SUCCEEDED)


class Events:
    wants_snapshots = True  # build them anyway: the snapshot code runs in these tests too

    def __init__(self) -> None:
        self.lines: list[str] = []

    def event(self, message: str) -> None:
        self.lines.append(message)

    def update(self, snapshot: Snapshot) -> None:
        return None


def stores(tmp_path: Path, tasks: list[Task]) -> tuple[StateStore, RunStore]:
    """A state database in `tmp_path` holding `tasks` (with their recorded dependencies), and its runs."""
    db = Database(tmp_path / "state.db")
    state = StateStore(db)
    with state.transaction() as tx:
        for t in tasks:
            tx.save(t)
    return state, RunStore(db, tmp_path / "runs")


def make(tmp_path: Path, tasks: list[Task], registry: ScriptedRegistry, once: bool = True):
    state, runs = stores(tmp_path, tasks)
    executor = RecordingExecutor(runs)
    events = Events()
    watcher = Watcher(state, runs, registry, executor, events, WatchOptions(once=once, poll_min=1, poll_max=2))
    return watcher, executor, events


def test_one_head_per_distinct_base_and_each_task_triggered_once(tmp_path: Path) -> None:
    registry = ScriptedRegistry(NEW, P_NEW)
    tasks = [task("app-one", [dep(BASE)]), task("app-two", [dep(BASE)])]
    watcher, executor, _ = make(tmp_path, tasks, registry)
    assert watcher.run() == 0
    assert registry.heads == [KEY]
    assert sorted(name for name, _ in executor.order) == ["app-one", "app-two"]
    assert all(t.kind is TriggerKind.BASE_IMAGE_UPDATE and t.old_digest == OLD for _, t in executor.order)


def test_a_platform_lookup_failure_is_reported_and_the_loop_goes_on(tmp_path: Path) -> None:
    registry = ScriptedRegistry(NEW, fail_platform=True)
    watcher, executor, events = make(tmp_path, [task("app-one", [dep(BASE)])], registry)
    assert watcher.run() == 0
    assert executor.order == []
    assert any("platform manifests could not be read: registry went away" in line for line in events.lines)
    assert watcher.errors[KEY].startswith("moved to")


def test_an_unchanged_platform_records_the_new_index_and_runs_nothing(tmp_path: Path) -> None:
    watcher, executor, _ = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_OLD))
    assert watcher.run() == 0
    assert executor.order == []
    recorded = StateStore(Database(tmp_path / "state.db")).get("app-one").step.dependencies[0]
    assert (recorded.digest, recorded.platform_digest) == (NEW, P_OLD)


def test_triggers_during_a_build(tmp_path: Path) -> None:
    """A timer during a build queues one run after it; a base that moves again is checked after it."""
    watcher, executor, _ = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_NEW))
    watcher._reload(force=True)
    building = watcher.executor.queue(watcher.tasks["app-one"], RunTrigger())
    watcher.running["app-one"] = _Running(building, threading.Event())
    timer = RunTrigger(kind=TriggerKind.TIMER, timer_name="t1", schedule_occurrence="now")
    watcher._trigger("app-one", timer)
    watcher._trigger("app-one", timer)  # absorbed: at most one queued run per task
    assert list(watcher.pending) == ["app-one"]
    assert watcher.pending["app-one"].trigger == timer
    watcher._trigger("app-one", RunTrigger(kind=TriggerKind.BASE_IMAGE_UPDATE), KEY)
    assert watcher.running["app-one"].recheck == {KEY}
    assert watcher.pending["app-one"].trigger == timer
    assert triggers.ready(watcher.pending, set(watcher.running), watcher.plan.graph) == []  # waits for the build


def test_a_second_watch_on_the_same_state_is_refused(tmp_path: Path) -> None:
    first, executor, _ = make(tmp_path, [], ScriptedRegistry(NEW), once=False)
    worker = threading.Thread(target=first.run)
    worker.start()
    try:
        for _ in range(400):
            if first._watch_lock_fd is not None:
                break
            threading.Event().wait(0.05)
        assert first._watch_lock_fd is not None, "the first watch never took its lock"
        second = Watcher(first.state, first.runs, ScriptedRegistry(NEW), executor, Events(), WatchOptions(once=True))
        with pytest.raises(AcrTaskError, match="Another acrtask watch"):
            second.run()
    finally:
        first.stop()
        worker.join(10)


def test_pushes_of_other_processes_are_noticed_whatever_order_their_records_appear_in(tmp_path: Path) -> None:
    from acrtask.model import OutputImage

    watcher, _, _ = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(OLD))
    watcher._reload(force=True)
    producer = Task(name="producer", step=replace(task("x", []).step, image_names=(BASE,)))
    pushed = []
    for _ in range(30):
        run = watcher.runs.create(producer, RunTrigger())
        pushed.append(replace(run, pid=1, status=RunStatus.SUCCEEDED,
                              output_images=(OutputImage("reg.local:5000", "base", "1", NEW),)))
    for run in reversed(pushed):  # newest record written first: ids appear out of order
        watcher.runs.save(run)
    found = watcher.followed.pushed(own=set())
    assert [run.run_id for run in found] == [run.run_id for run in pushed]  # oldest first, all 30
    for run in found:
        watcher._after_push(run)
    assert watcher.due_now == {KEY: pushed[-1].run_id}  # the newest push names the run
    assert watcher.followed.open == set()


def test_a_task_whose_context_vanished_does_not_stop_the_watch(tmp_path: Path) -> None:
    from acrtask.model import SourceTrigger, Step, Trigger
    from acrtask.watch.schedules import CommitPoller

    gone = Task(name="gone-task", step=Step(context_path=str(tmp_path / "vanished"), image_names=("r.io/a:1",)),
                trigger=Trigger(sources=(SourceTrigger(repository_url=str(tmp_path / "vanished"), branch="main"),)))
    poller = CommitPoller(lambda location, branch: "0" * 40, interval=1)
    assert poller.due([gone], now=10.0) == []  # logged, not raised


def test_watch_reloads_only_what_other_processes_changed(tmp_path: Path) -> None:
    watcher, _, _ = make(tmp_path, [task("app-one", [dep(BASE)]), task("app-two", [dep(BASE)]),
                                    task("app-three", None)], ScriptedRegistry(OLD))
    calls = {"snapshot": 0, "changes_since": 0}
    for name in calls:
        real = getattr(watcher.state, name)

        def counted(*args, _real=real, _name=name):  # noqa: ANN002, ANN202
            calls[_name] += 1
            return _real(*args)

        setattr(watcher.state, name, counted)
    watcher._reload(force=True)
    assert calls == {"snapshot": 1, "changes_since": 0}
    watcher._reload()
    assert calls == {"snapshot": 1, "changes_since": 0}  # nobody wrote: not even the change notes are read

    other = StateStore(Database(tmp_path / "state.db"))  # another process
    other.record_dependencies("app-three", (dep("reg.local:5000/other:2"),))
    with other.transaction() as tx:
        tx.delete("app-two")
    watcher._reload()
    assert calls == {"snapshot": 1, "changes_since": 1}
    assert sorted(watcher.tasks) == ["app-one", "app-three"]
    assert watcher.tasks["app-three"].step.dependencies == (dep("reg.local:5000/other:2"),)
    assert [i.task for i in watcher.plan.interests[KEY]] == ["app-one"]
    assert BaseKey("reg.local:5000", "other", "2") in watcher.next_check  # a new base is checked at once


# -- a hostile day: no file descriptors, a full disk, a run whose process was killed ------------------------


def wait_until(condition, what: str, timeout: float = 10.0) -> None:
    """Poll `condition` (bounded in time and count): the loop runs on its own thread."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def start_watching(tmp_path: Path, tasks: list[Task], registry: ScriptedRegistry):
    """A long-running watch (not --once) on its own thread, retrying failed steps within milliseconds."""
    state, runs = stores(tmp_path, tasks)
    executor, events = RecordingExecutor(runs), Events()
    options = WatchOptions(poll_min=3600, poll_max=3600, retry_first=0.01, foreign_scan_interval=0.01)
    watcher = Watcher(state, runs, registry, executor, events, options)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_run_catching(watcher)), daemon=True)
    thread.start()
    return watcher, executor, events, thread, outcome


def _run_catching(watcher: Watcher) -> object:
    try:
        return watcher.run()
    except BaseException as exc:  # the old loop died of OSError: the test must see it, not hang
        return exc


def stop_watching(watcher: Watcher, thread: threading.Thread, outcome: list[object]) -> None:
    watcher.stop()
    thread.join(10)
    assert outcome == [0], f"the watch loop ended with {outcome}"


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
        watcher, executor, events, thread, outcome = start_watching(
            tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_NEW))
        try:
            wait_until(lambda: len(tries) >= 3 or outcome, "three tries to queue the run")
            assert outcome == [], f"the watch loop ended: {outcome}"
            assert executor.order == [] and watcher.runs.all() == []  # the run was not started
            failing.clear()  # descriptors, or space, are back
            wait_until(lambda: executor.order, "the run, once the fault clears")
        finally:
            stop_watching(watcher, thread, outcome)
    return watcher, executor, [line for line in events.lines if line.startswith("ERROR")]


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
    import errno

    registry = FailingFirst(OSError(errno.EMFILE, "Too many open files"))
    watcher, executor, events, thread, outcome = start_watching(tmp_path, [task("app-one", [dep(BASE)])], registry)
    try:
        wait_until(lambda: registry.failed >= 3 or outcome, "three failed checks")
        assert outcome == [], f"the watch loop ended: {outcome}"
        registry.failing.clear()
        wait_until(lambda: executor.order, "the run, once the check works")
    finally:
        stop_watching(watcher, thread, outcome)
    errors = [line for line in events.lines if line.startswith("ERROR")]
    assert len(errors) == 1 and "Too many open files" in errors[0], errors
    assert not any(line.startswith("Check of") for line in events.lines)  # the one line said it
    assert any(line == "Registry reg.local:5000 is back: its tags are checked again." for line in events.lines)
    assert [name for name, _ in executor.order] == ["app-one"]


def test_a_full_disk_when_queuing_is_one_error_nothing_started_and_retried_when_space_returns(tmp_path: Path) -> None:
    """What the state database says on a full disk (SQLITE_FULL); a real full tmpfs is in test_state_faults.py."""
    from acrtask.state.db import _disk_full

    watcher, executor, errors = queue_while_failing(tmp_path, _disk_full)
    assert len(errors) == 1, errors
    assert "Could not queue a run of app-one" in errors[0] and "the disk is full" in errors[0]
    assert "It was not started" in errors[0]
    assert [run.status for run in watcher.runs.all()] == [RunStatus.SUCCEEDED]


def test_a_full_disk_under_watch_once_fails_the_run_and_exits_1(tmp_path: Path) -> None:
    import errno

    watcher, executor, events = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_NEW))

    def queue(task: Task, trigger: RunTrigger) -> Run:
        raise OSError(errno.ENOSPC, "No space left on device")

    executor.queue = queue  # type: ignore[method-assign]
    assert watcher.run() == 1
    assert executor.order == []
    assert [line for line in events.lines if line.startswith("ERROR")] == [
        "ERROR: Could not queue a run of app-one (base image reg.local:5000/base:1 changed: aaaaaaaaaaaa -> "
        "bbbbbbbbbbbb): [Errno 28] No space left on device. It was not started; free the disk or raise the "
        "open-file limit, and run again."]


def dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)  # reaped by run(): that pid is gone


def test_a_run_of_another_process_that_dies_while_watch_runs_is_recorded_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    watcher, _, events, thread, outcome = start_watching(tmp_path, [task("app-one", [dep(BASE)])],
                                                         ScriptedRegistry(OLD))
    try:
        wait_until(lambda: watcher.last_check, "the first check")
        # Another process (a `task run` in another shell) records a Running run, then is killed.
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            run = watcher.runs.create(task("manual-task", None), RunTrigger())
            watcher.runs.save(replace(run, status=RunStatus.RUNNING, pid=other.pid))
            wait_until(lambda: run.run_id in watcher.followed.open, "watch to follow the run")
            assert watcher.runs.get(run.run_id).status is RunStatus.RUNNING  # alive: left alone
        finally:
            other.kill()
            other.wait(10)
        wait_until(lambda: watcher.runs.get(run.run_id).status is RunStatus.ERROR, "the dead run recorded Error")
    finally:
        stop_watching(watcher, thread, outcome)
    recorded = watcher.runs.get(run.run_id)
    assert recorded.error == f"interrupted: the acrtask process running it (pid {other.pid}) stopped"
    assert f"Run {run.run_id} of manual-task was interrupted: its process (pid {other.pid}) is gone; recorded Error." \
        in events.lines


def test_a_queued_run_whose_starter_is_gone_gets_a_grace_period(tmp_path: Path) -> None:
    """`task run --no-wait` records its starter's pid; the detached child writes its own a moment later."""
    from acrtask.watch.followed import QUEUED_GRACE, FollowedRuns

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
    from acrtask.watch.followed import QUEUED_GRACE, FollowedRuns

    runs = RunStore(Database(tmp_path / "state.db"), tmp_path / "runs")
    followed = FollowedRuns(runs)
    followed.start([])
    queued = runs.save(replace(runs.create(task("t", None), RunTrigger()), pid=dead_pid()))
    followed.pushed(own=set())
    assert followed.abandoned(now=0.0) == []
    runs.save(replace(queued, status=RunStatus.RUNNING, pid=os.getpid()))  # the detached child took it
    assert followed.abandoned(now=QUEUED_GRACE * 2) == []
    assert runs.get(queued.run_id).status is RunStatus.RUNNING


def test_a_log_on_a_full_disk_loses_lines_but_not_the_watch() -> None:
    import errno
    import io

    from acrtask.watch.view import PlainView

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
