"""CLI overhead: `task list` over 1,000 tasks against a bare interpreter that only reads the same tasks.

The bare reader imports typer (the CLI framework acrtask is built on), opens the same state database
with sqlite3, decodes every task's document and prints them as JSON: the least a typer command listing
them has to do. (Before the database the baseline was `tomllib` loading state.toml, about 80 ms for
1,000 tasks; reading them from SQLite takes a few ms, so without typer the ratio would measure only
Python's start-up against typer's import.) Both are measured side by side in one run (alternating,
median of N), so a noisy machine affects both alike. Target: each `task list` at most 4x the bare reader.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from acrtask.model import Argument, Step, Task, TimerTrigger, Trigger
from acrtask.state import Database, StateStore

TASKS = 1000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))
TARGET = 4.0


BARE_READER = (
    "import json, sqlite3, sys, typer; c = sqlite3.connect(sys.argv[1]); "
    "print(json.dumps([json.loads(d) for (d,) in c.execute('SELECT document FROM tasks ORDER BY name')]))"
)


def fill(home: Path) -> Path:
    db = Database(home / "state.db")
    with StateStore(db).transaction() as tx:
        for i in range(TASKS):
            name = f"task-{i:04d}"
            tx.save(Task(
                name=name,
                step=Step(context_path=f"/src/app{i}", image_names=(f"localhost:5000/app{i}:{{{{.Run.ID}}}}",),
                          arguments=(Argument("VERSION", str(i)),)),
                trigger=Trigger(timers=(TimerTrigger("nightly", "0 3 * * *"),)),
                creation_date="2026-11-27T00:00:00.000000Z",
            ))
    db.close()
    return db.path


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        state = fill(home)
        env = {**os.environ, "ACRTASK_HOME": str(home)}
        commands = {
            "bare reader": [sys.executable, "-c", BARE_READER, str(state)],
            "task list -o table": [sys.executable, "-m", "acrtask", "task", "list", "-o", "table"],
            "task list -o json": [sys.executable, "-m", "acrtask", "task", "list", "-o", "json"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():  # warm the page cache once
            timed(argv, env)
        for _ in range(ROUNDS):
            for name, argv in commands.items():
                samples[name].append(timed(argv, env))
    base = statistics.median(samples["bare reader"])
    print(f"{TASKS} tasks, median of {ROUNDS} runs each")
    failed = False
    for name, values in samples.items():
        median = statistics.median(values)
        ratio = median / base
        line = f"  {name:<20} {median * 1000:7.1f} ms  {ratio:4.2f}x bare"
        if name != "bare reader":
            ok = ratio <= TARGET
            failed |= not ok
            line += f"  (target <= {TARGET:.0f}x: {'met' if ok else 'MISSED'})"
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
