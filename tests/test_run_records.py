"""Run records store facts; az's run shape is made from them when shown, byte for byte as before the split.

tests/fixtures/run_records holds six records as acrtask stored them before (with `name`, `reason`, `runType`
AutoRun and the trigger sections beside the facts) and what `task list-runs` / `show-run` printed for them
then: a manual run with outputs, a base-image update pushed by another run (an endpoint's), a failed timer run
whose endpoint was lost, a canceled commit run, a QuickBuild and a multi-step run with its steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acrtask import wiring
from acrtask.dependency import BaseImageDependency, DependencyType
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.run_record import (
    SHOWN_ONLY,
    Run,
    RunStatus,
    RunTrigger,
    RunType,
    StepRecord,
    StepStatus,
    TriggerKind,
    facts,
)
from acrtask.state import Database
from acrtask.state.runs import RunRecords, run_number
from tests.support.cli import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "run_records"
OLD_RECORDS = json.loads((FIXTURES / "stored_before_the_split.json").read_text())
SHOWN = [(("task", "list-runs", "-o", "json"), "list-runs.json"),
         (("task", "list-runs", "-o", "table"), "list-runs.table"),
         (("task", "show-run", "--run-id", "ca2", "-o", "json"), "show-run-ca2.json")]


def _digest(char: str) -> str:
    return "sha256:" + char * 64


def _time(second: int) -> str:
    return f"2026-11-25T12:00:0{second}.000000Z"


def the_same_runs() -> list[Run]:
    """The fixture's runs, made with today's values."""
    node = BaseImageDependency(DependencyType.RUNTIME, ImageRef("docker.io", "library/node", "20"), _digest("f"),
                               _digest("f"), Platform("linux", "amd64"), step="build-app")
    pushed = ImageRef("localhost:5000", "multi", "v1", _digest("1"))
    return [
        Run("ca1", "app", RunStatus.SUCCEEDED, RunTrigger(), _time(0), Platform("linux", "arm", "v7"), _time(1),
            _time(5), (ImageRef("localhost:5000", "hello", "ca1", _digest("c")),), pid=4242,
            registry="localhost:5000", commit_id="0123abc"),
        Run("ca2", "app", RunStatus.RUNNING, RunTrigger(
            TriggerKind.BASE_IMAGE_UPDATE, ImageRef.parse("localhost:5000/baseimages/node:15-alpine"), _digest("a"),
            _digest("d"), upstream_run_id="ca1", base_image_step="build-app"), _time(2), start_time=_time(3),
            pid=4243, registry="localhost:5000", agent="ep1"),
        Run("ca3", "nightly", RunStatus.FAILED, RunTrigger(TriggerKind.TIMER, timer_name="t1",
            schedule_occurrence="2026-11-25T03:00:00Z"), _time(3), start_time=_time(4), finish_time=_time(6),
            error="buildah: build failed (exit code 1): boom.", agent="ep2", agent_lost=True),
        Run("ca4", "fromgit", RunStatus.CANCELED, RunTrigger(TriggerKind.COMMIT, commit_id="fedcba9"), _time(4),
            commit_id="fedcba9"),
        Run("ca5", "", RunStatus.SUCCEEDED, RunTrigger(), _time(5), start_time=_time(6), finish_time=_time(7),
            output_images=(ImageRef("localhost:5000", "quick", "1", _digest("e")),), run_type=RunType.QUICK_BUILD),
        Run("ca6", "multi", RunStatus.SUCCEEDED, RunTrigger(
            TriggerKind.BASE_IMAGE_UPDATE, ImageRef.parse("docker.io/library/node:20"), None, _digest("f")),
            _time(6), start_time=_time(7), finish_time=_time(9), output_images=(pushed,),
            steps=(StepRecord("build-app", "build", StepStatus.SUCCESSFUL, _time(7), _time(8), images=("app:v1",),
                              dependencies=(node,)),
                   StepRecord("push", "push", StepStatus.SUCCESSFUL, _time(8), _time(9), output_images=(pushed,)),
                   StepRecord("test", "cmd", StepStatus.SKIPPED))),
    ]


def _stored(home: Path) -> dict[str, dict]:
    db = Database(home / "state.db")
    try:
        return {f"ca{n}": json.loads(doc) for n, doc in db.query("SELECT number, document FROM runs", ())}
    finally:
        db.close()


@pytest.mark.parametrize(("argv", "expected"), SHOWN, ids=[name for _, name in SHOWN])
def test_records_stored_before_the_split_show_as_they_did(home: Path, argv: tuple[str, ...], expected: str) -> None:
    records = wiring.Program().run_store.records
    with records.db.write() as conn:
        for run_id, document in OLD_RECORDS.items():
            RunRecords.insert(conn, run_number(run_id) or 0, Run.from_dict(document), document)
    shown = run_cli(*argv)
    assert shown.code == 0, shown.err
    assert shown.out == (FIXTURES / expected).read_text()


@pytest.mark.parametrize(("argv", "expected"), SHOWN, ids=[name for _, name in SHOWN])
def test_records_of_facts_show_as_before(home: Path, argv: tuple[str, ...], expected: str) -> None:
    records = wiring.Program().run_store.records
    for run in the_same_runs():
        records.save(run)
    shown = run_cli(*argv)
    assert shown.code == 0, shown.err
    assert shown.out == (FIXTURES / expected).read_text()


def test_a_record_stores_facts_only(home: Path) -> None:
    records = wiring.Program().run_store.records
    for run in the_same_runs():
        records.save(run)
    stored = _stored(home)
    assert stored == {run_id: facts(document) for run_id, document in OLD_RECORDS.items()}
    for document in stored.values():
        assert not set(SHOWN_ONLY) & set(document)  # no reason, name, imageUpdateTrigger, ...
    # runType only where it is a fact of its own: a quick run's. A task's run (AutoRun) and the multi-step run
    # older versions stored as AutoRun carry none.
    assert {run_id: document.get("runType") for run_id, document in stored.items() if "runType" in document} == {
        "ca5": "QuickBuild"}
    assert OLD_RECORDS["ca6"]["runType"] == "AutoRun"


def test_an_old_record_reads_as_the_same_facts() -> None:
    assert [Run.from_dict(document) for document in OLD_RECORDS.values()] == the_same_runs()
    legacy = {**OLD_RECORDS["ca1"], "runType": "AutoBuild"}  # what the first versions stored for a task's run
    assert Run.from_dict(legacy).run_type is None
