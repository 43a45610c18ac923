"""A writer killed with SIGKILL in the middle of its transactions, 100 times: the database still opens, passes
`integrity_check`, and holds every change that was committed (and reported) before the kill."""

from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path

from acrtask.model import BaseImageDependency, DependencyType, RunTrigger, Step, Task
from acrtask.runids import run_number
from acrtask.runs import RunStore
from acrtask.state import Database, StateStore

KILLS = 100


def _task(number: int) -> Task:
    deps = tuple(BaseImageDependency(DependencyType.RUNTIME, "reg.local:5000", f"base{number % 7}", str(i),
                                     f"sha256:{number:064x}", None, "linux/amd64") for i in range(3))
    return Task(name=f"task-{number:06d}", step=Step(context_path="/src", image_names=(f"reg.local:5000/a{number}:1",),
                                                    base_image_dependencies=deps))


def _writer(path: Path, first: int, report: int) -> None:
    """The child: write tasks with their dependencies and a run each, reporting each number once committed."""
    db = Database(path)
    store, runs = StateStore(db), RunStore(db, path.parent / "runs")
    number = first
    while True:
        task = _task(number)
        with store.transaction() as tx:
            tx.save(task)
            tx.record_dependencies(task.name, task.step.dependencies)  # a second write of the same rows
        run = runs.create(task, RunTrigger())
        os.write(report, f"{number} {run.run_id}\n".encode())
        number += 1


def _check_committed(store: StateStore, runs: RunStore, reported: dict[str, str]) -> None:
    """Every reported task is there with its dependencies, and its run."""
    for name, run_id in reported.items():
        task = store.get(name)
        assert task is not None, name
        assert task.step.dependencies == _task(int(name.rsplit("-", 1)[1])).step.dependencies
        assert runs.get(run_id).task == name


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_sigkill_mid_transaction_loses_no_committed_change(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Database(path).connection()  # the schema, before the first child
    rng = random.Random(20261128)
    committed: dict[str, str] = {}  # task name -> run id
    first = 0
    deadline = time.monotonic() + 120
    for _ in range(KILLS):
        assert time.monotonic() < deadline, "the kill loop took too long"
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                os.close(read_end)
                _writer(path, first, write_end)
            finally:
                os._exit(1)
        os.close(write_end)
        # Once it has committed something, let it write on for a moment, then kill it wherever it is.
        ready, _, _ = select.select([read_end], [], [], 60)
        assert ready, "the writer never committed"
        first_reports = os.read(read_end, 65536)
        time.sleep(rng.uniform(0.0, 0.015))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        reported = {}
        for line in (first_reports.decode() + _read_all(read_end)).splitlines():
            number, run_id = line.split()
            reported[f"task-{int(number):06d}"] = run_id
            first = max(first, int(number) + 1)
        os.close(read_end)
        first += 1  # the number the child was writing when it died may or may not be there; skip it
        committed.update(reported)

        db = Database(path)  # a fresh open: recovers from the WAL the killed writer left
        try:
            assert db.query("PRAGMA integrity_check") == [("ok",)]
            assert db.query("SELECT COUNT(*) FROM tasks")[0][0] >= len(committed)
            _check_committed(StateStore(db), RunStore(db, tmp_path / "runs"), reported)
        finally:
            db.close()
    db = Database(path)
    try:  # at the end, everything ever reported, once more
        _check_committed(StateStore(db), RunStore(db, tmp_path / "runs"), committed)
    finally:
        db.close()
    assert len(committed) >= KILLS  # every writer committed before it was killed
    numbers = [run_number(run_id) for run_id in committed.values()]
    assert len(set(numbers)) == len(numbers)  # never reused, across all the crashes
