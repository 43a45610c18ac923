"""Run records in the state database: ids that never repeat, newest-first listing, pruning that never drops a
live run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acrtask.errors import NotFoundError
from acrtask.model import Step, Task
from acrtask.reference import ImageRef
from acrtask.run_record import RunStatus, RunTrigger, TriggerKind
from acrtask.run_shape import az_run
from acrtask.runs import RunStore
from acrtask.state import Database

TASK = Task(name="app-task", step=Step(context_path="/src", image_names=("r.io/app:1",)))


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(Database(tmp_path / "state.db"), tmp_path / "runs", keep=3,
                    clock=lambda: datetime(2026, 11, 27, 12, 0, tzinfo=UTC))


def test_ids_increase_and_are_never_reused_after_pruning(store: RunStore) -> None:
    ids = []
    for _ in range(5):
        run = store.create(TASK, RunTrigger())
        with store.open_log(run.run_id) as log:
            log.write("built\n")
        store.finish(run, RunStatus.SUCCEEDED)
        ids.append(run.run_id)
    assert ids == ["ca1", "ca2", "ca3", "ca4", "ca5"]
    store.prune()
    assert [r.run_id for r in store.all()] == ["ca5", "ca4", "ca3"]
    assert not store.log_path("ca1").exists() and store.log_path("ca3").exists()  # logs go with their records
    for _ in range(3):  # the newest runs pruned too: their numbers are still never given out again
        store.finish(store.create(TASK, RunTrigger()), RunStatus.SUCCEEDED)
    store.records.db.query("DELETE FROM runs")
    assert store.create(TASK, RunTrigger()).run_id == "ca9"


def test_pruning_keeps_runs_that_have_not_ended(store: RunStore) -> None:
    live = store.create(TASK, RunTrigger())
    for _ in range(4):
        store.finish(store.create(TASK, RunTrigger()), RunStatus.FAILED, "boom")
    store.prune()
    assert live.run_id in [r.run_id for r in store.all()]


def test_list_filters_and_top(store: RunStore) -> None:
    other = replace(TASK, name="other-task")
    store.finish(store.create(TASK, RunTrigger()), RunStatus.SUCCEEDED)
    store.finish(store.create(other, RunTrigger()), RunStatus.FAILED, "no")
    store.create(TASK, RunTrigger(kind=TriggerKind.TIMER, timer_name="t1", schedule_occurrence="x"))
    assert [r.run_id for r in store.find(task="app-task")] == ["ca3", "ca1"]
    assert [r.run_id for r in store.find(status=RunStatus.FAILED)] == ["ca2"]
    assert [r.run_id for r in store.find(top=1)] == ["ca3"]
    assert store.last("other-task").run_id == "ca2"


def test_unknown_run(store: RunStore) -> None:
    with pytest.raises(NotFoundError, match="The run 'ca9' could not be found"):
        store.get("ca9")
    with pytest.raises(NotFoundError, match="Could not find the last created run"):
        store.last()


def test_records_round_trip_and_show_their_reason(store: RunStore) -> None:
    trigger = RunTrigger(kind=TriggerKind.BASE_IMAGE_UPDATE, base_image=ImageRef.parse("r.io/base:1"),
                         old_digest="sha256:" + "a" * 64, new_digest="sha256:" + "b" * 64, upstream_run_id="ca0")
    run = store.create(TASK, trigger)
    loaded = store.get(run.run_id)
    assert loaded == run
    shown = az_run(loaded)
    assert shown["reason"] == "base image r.io/base:1 changed: aaaaaaaaaaaa -> bbbbbbbbbbbb, pushed by run ca0"
    assert shown["imageUpdateTrigger"]["images"] == [{"registry": "r.io", "repository": "base", "tag": "1",
                                                      "digest": "sha256:" + "b" * 64,
                                                      "previousDigest": "sha256:" + "a" * 64}]
    assert store.records.db.path.stat().st_mode & 0o777 == 0o600
