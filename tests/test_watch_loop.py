"""The watch loop's scheduling, driven with a scripted registry and an executor that records what it was
asked to run (real builds are in tests/integration/test_watch.py; these check decisions and order)."""

from __future__ import annotations

import threading
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
from tests.test_triggers import NEW, OLD, P_NEW, P_OLD, dep, task

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


def make(tmp_path: Path, tasks: list[Task], registry: ScriptedRegistry, once: bool = True):
    db = Database(tmp_path / "state.db")
    state = StateStore(db)
    with state.transaction() as tx:
        for t in tasks:
            tx.save(t)
    runs = RunStore(db, tmp_path / "runs")
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
