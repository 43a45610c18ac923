"""The composition root: each part built once and shared, from any thread; a new Program per command."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from acrtask import wiring
from acrtask.reference import ImageRef
from acrtask.run_record import RunTrigger
from tests.support.tasks import task


def test_a_program_builds_each_part_once_even_when_threads_ask_together(home: Path) -> None:
    program = wiring.Program()
    start = threading.Barrier(8)
    got: list[object] = []

    def ask() -> None:
        start.wait()
        got.append(program.run_service)  # builds the task service, the stores, the runner, the registry client

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(got) == 8 and all(service is got[0] for service in got)
        assert program.run_service.runner is program.runner and program.runner.resolver is program.registry_client
    finally:
        program.close()


def test_a_programs_services_see_what_its_stores_wrote(home: Path) -> None:
    program = wiring.Program()
    try:
        with program.state_store.transaction() as tx:
            tx.save(task("shared-task", []))
        run = program.run_store.create(program.state_store.get("shared-task"), RunTrigger())
        assert program.run_store.get(run.run_id).task == "shared-task"
        assert program.task_service.show("shared-task").name == "shared-task"
    finally:
        program.close()


def test_each_command_gets_a_new_program_and_its_end_closes_the_registry_client(home: Path) -> None:
    first = wiring.program()
    assert wiring.program() is first
    client = first.registry_client
    wiring.end()
    with pytest.raises(RuntimeError, match="closed"):
        client.resolve(ImageRef.parse("localhost:5000/base:1"))
    second = wiring.program()
    try:
        assert second is not first
    finally:
        wiring.end()
