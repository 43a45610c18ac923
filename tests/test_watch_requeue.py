"""Runs that lost their build endpoint mid-build: which ones watch queues again, and that it does so once."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from acrtask.endpoint_status import EndpointStatus
from acrtask.model import Task
from acrtask.reference import ImageRef
from acrtask.run_record import Run, RunStatus, RunTrigger, TriggerKind
from acrtask.runs import RunStore
from acrtask.watch.requeue import should_requeue
from tests.support.tasks import NEW, P_NEW, dep, task
from tests.support.watch_fakes import BASE, LogLines, ScriptedRegistry, make

BASE_UPDATE = RunTrigger(kind=TriggerKind.BASE_IMAGE_UPDATE, base_image=ImageRef.parse(BASE))


def finished(status: RunStatus, *, lost: bool, trigger: RunTrigger = BASE_UPDATE, run_id: str = "ca1") -> Run:
    return Run(run_id=run_id, task="app", status=status, trigger=trigger, create_time="2026-01-01T00:00:00Z",
               agent="ep1", agent_lost=lost)


@pytest.mark.parametrize(("run", "ours", "retries", "expected"), [
    (finished(RunStatus.FAILED, lost=True), True, set(), True),
    (finished(RunStatus.FAILED, lost=True, trigger=RunTrigger(kind=TriggerKind.TIMER)), True, set(), True),
    (finished(RunStatus.FAILED, lost=True, trigger=RunTrigger()), True, set(), False),  # manual
    (finished(RunStatus.FAILED, lost=True), False, set(), False),  # another process's run
    (finished(RunStatus.FAILED, lost=True), True, {"ca1"}, False),  # itself a retry: once only
    (finished(RunStatus.FAILED, lost=False), True, set(), False),  # the build failed, not the endpoint
    (finished(RunStatus.TIMEOUT, lost=True), True, set(), False),
    (finished(RunStatus.CANCELED, lost=True), True, set(), False),
])
def test_should_requeue(run: Run, ours: bool, retries: set[str], expected: bool) -> None:
    assert should_requeue(run, ours=ours, retries=retries) is expected


class LosingExecutor:
    """Ends the first `losses` runs Failed with their endpoint lost (as PooledBuilder records it), the rest
    Succeeded; builds nothing (real builds: tests/integration/test_builders_pool_real.py)."""

    def __init__(self, runs: RunStore, losses: int) -> None:
        self.runs, self.losses = runs, losses
        self.executed: list[Run] = []

    def queue(self, task: Task, trigger: RunTrigger) -> Run:
        return self.runs.create(task, trigger)

    def execute(self, run: Run, task: Task, emit, cancel: threading.Event) -> Run:
        self.executed.append(run)
        if len(self.executed) <= self.losses:
            lost = replace(run, status=RunStatus.RUNNING, agent="ep1", agent_lost=True)
            return self.runs.finish(lost, RunStatus.FAILED, "The build endpoint ep1 stopped answering")
        return self.runs.finish(replace(run, status=RunStatus.RUNNING, agent="ep2"), RunStatus.SUCCEEDED)


def watch_with(tmp_path: Path, losses: int) -> tuple[int, LosingExecutor, LogLines]:
    watcher, executor, view = make(tmp_path, [task("app-one", [dep(BASE)])], ScriptedRegistry(NEW, P_NEW),
                                   executor=lambda runs: LosingExecutor(runs, losses))
    assert isinstance(executor, LosingExecutor)
    return watcher.run(), executor, view


def test_a_triggered_run_that_lost_its_endpoint_runs_again_and_watch_succeeds(tmp_path: Path) -> None:
    code, executor, events = watch_with(tmp_path, losses=1)
    assert code == 0  # the run queued again succeeded
    first, second = executor.executed
    assert second.trigger == first.trigger and second.run_id != first.run_id
    assert any(f"Run {first.run_id} of app-one lost its build endpoint ep1; queued it again as {second.run_id}"
               in line for line in events.lines)
    records = {r.run_id: r for r in executor.runs.all()}
    assert records[first.run_id].status is RunStatus.FAILED and records[first.run_id].agent_lost
    assert records[second.run_id].status is RunStatus.SUCCEEDED and records[second.run_id].agent == "ep2"


def test_a_run_is_queued_again_only_once(tmp_path: Path) -> None:
    code, executor, events = watch_with(tmp_path, losses=5)
    assert code == 1
    assert len(executor.executed) == 2
    assert sum("queued it again" in line for line in events.lines) == 1


def test_the_watch_view_gets_the_endpoints_state(tmp_path: Path) -> None:
    tasks = [task("app-one", [dep(BASE)])]
    (tmp_path / "bare").mkdir()
    (tmp_path / "pooled").mkdir()
    bare, _, _ = make(tmp_path / "bare", tasks, ScriptedRegistry(NEW, P_NEW))
    assert bare.snapshot().endpoints == ()
    status = EndpointStatus("ep1", "podman", "tcp://127.0.0.1:1", ("linux/amd64",), 2, 1, "down", "refused", 5.0)
    pooled, _, _ = make(tmp_path / "pooled", tasks, ScriptedRegistry(NEW, P_NEW), endpoint_status=lambda: (status,))
    assert pooled.snapshot().endpoints == (status,)
