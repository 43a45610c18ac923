"""CLI overhead: `task list` over 1,000 tasks against a bare interpreter that only loads the same TOML.

Both are measured side by side in one run (alternating, median of N), so a noisy machine affects
both alike. Target: each `task list` at most 4x the bare load.
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
from acrtask.state import StateStore

TASKS = 1000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))
TARGET = 4.0


def fill(home: Path) -> Path:
    store = StateStore(home / "state.toml")
    with store.transaction() as state:
        for i in range(TASKS):
            name = f"task-{i:04d}"
            state.tasks[name] = Task(
                name=name,
                step=Step(context_path=f"/src/app{i}", image_names=(f"localhost:5000/app{i}:{{{{.Run.ID}}}}",),
                          arguments=(Argument("VERSION", str(i)),)),
                trigger=Trigger(timers=(TimerTrigger("nightly", "0 3 * * *"),)),
                creation_date="2026-11-27T00:00:00.000000Z",
            )
    return store.path


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
            "bare tomllib load": [sys.executable, "-c",
                                  f"import tomllib; tomllib.load(open({str(state)!r}, 'rb'))"],
            "task list -o table": [sys.executable, "-m", "acrtask", "task", "list", "-o", "table"],
            "task list -o json": [sys.executable, "-m", "acrtask", "task", "list", "-o", "json"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():  # warm the page cache once
            timed(argv, env)
        for _ in range(ROUNDS):
            for name, argv in commands.items():
                samples[name].append(timed(argv, env))
    base = statistics.median(samples["bare tomllib load"])
    print(f"{TASKS} tasks, median of {ROUNDS} runs each")
    failed = False
    for name, values in samples.items():
        median = statistics.median(values)
        ratio = median / base
        line = f"  {name:<20} {median * 1000:7.1f} ms  {ratio:4.2f}x bare"
        if name != "bare tomllib load":
            ok = ratio <= TARGET
            failed |= not ok
            line += f"  (target <= {TARGET:.0f}x: {'met' if ok else 'MISSED'})"
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
