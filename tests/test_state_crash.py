"""A writer killed with SIGKILL in the middle of its transactions, 100 times: the database still opens, passes
`integrity_check`, and holds every change that was committed (and reported) before the kill."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from acrtask.model import BaseImageDependency, DependencyType, RunTrigger, Step, Task
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
        time.sleep(rng.uniform(0.001, 0.02))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        for line in _read_all(read_end).splitlines():
            number, run_id = line.split()
            committed[f"task-{int(number):06d}"] = run_id
            first = max(first, int(number) + 1)
        os.close(read_end)
        first += 1  # the number the child was writing when it died may or may not be there; skip it

        db = Database(path)  # a fresh open: recovers from the WAL the killed writer left
        try:
            assert db.query("PRAGMA integrity_check") == [("ok",)]
            store, runs = StateStore(db), RunStore(db, tmp_path / "runs")
            found = {task.name: task for task in store.all()}
            assert set(committed) <= set(found)
            for name in committed:
                number = int(name.rsplit("-", 1)[1])
                assert found[name].step.dependencies == _task(number).step.dependencies
            recorded = {run.run_id for run in runs.all()}
            assert set(committed.values()) <= recorded
        finally:
            db.close()
    assert len(committed) >= KILLS // 2, "the writer rarely got to commit: the loop tested little"
    numbers = [int(run_id[2:]) for run_id in committed.values()]
    assert len(set(numbers)) == len(numbers)  # never reused, across all the crashes
