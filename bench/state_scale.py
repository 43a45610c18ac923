"""State at scale: single-task operations with 10,000 tasks against the same with 10, side by side in one run.

    python bench/state_scale.py [--tasks 10000] [--small 10] [--rounds 9] [--records 200]

Two homes are written directly (acrtask.state + model objects, one transaction each): SMALL tasks and
TASKS tasks of the same shape (a build argument, a secret, a timer, a Runtime dependency on one of 100
base tags). Then, in rounds, each operation on the two homes back to back (the order alternating), so a
noisy machine hits both alike:

  (1) `acrtask task show -n NAME` (a subprocess, as a user runs it). Target: big <= 1.3x small.
  (2) `acrtask task list -o json` (a subprocess; it must read and print every task). Target: big <= 6x small.
  (3) recording a finished run's dependencies: what the runner does when a build succeeds
      (StateStore.record_dependencies, one transaction), RECORDS times per round in process (as 8 pairs),
      each on another task. Target: big <= 1.3x small, per recording.

Each figure is the median, over the rounds, of the ratio of a pair measured back to back. Exit code 0
whatever the figures (MISSED is printed for a target not met); 1 only when the bench itself cannot run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acrtask.dependency import BaseImageDependency, DependencyType  # noqa: E402
from acrtask.model import Argument, Step, Task, TimerTrigger, Trigger  # noqa: E402
from acrtask.platform import DEFAULT_PLATFORM  # noqa: E402
from acrtask.reference import ImageRef  # noqa: E402
from acrtask.state import Database, StateStore  # noqa: E402

BASES = 100
TARGETS = {"show": 1.3, "list": 6.0, "record": 1.3}
RECORD_PAIRS = 8  # the recordings of a round are measured as this many pairs


def dependency(i: int, digest_char: str = "a") -> BaseImageDependency:
    digest = "sha256:" + digest_char * 64
    return BaseImageDependency(DependencyType.RUNTIME, ImageRef("localhost:5000", f"bench/base{i % BASES}", "1"),
                               digest, digest, DEFAULT_PLATFORM)


def fill(home: Path, count: int) -> StateStore:
    store = StateStore(Database(home / "state.db"))
    with store.transaction() as tx:
        for i in range(count):
            tx.save(Task(
                name=f"task-{i:05d}",
                step=Step(context_path=f"/src/app{i}", image_names=(f"localhost:5000/app{i}:latest",),
                          arguments=(Argument("VERSION", str(i)), Argument("TOKEN", "s3cret", is_secret=True)),
                          base_image_dependencies=(dependency(i),)),
                trigger=Trigger(timers=(TimerTrigger("nightly", "0 3 * * *"),)),
                creation_date="2026-11-28T00:00:00.000000Z",
            ))
    return store


def timed_cli(home: Path, *args: str) -> float:
    env = {**os.environ, "ACRTASK_HOME": str(home)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "acrtask", *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def timed_records(store: StateStore, count: int, tasks: int, round_no: int) -> float:
    """Seconds per recording, over `count` recordings on different tasks (as finished runs do)."""
    start = time.perf_counter()
    for n in range(count):
        i = (round_no * count + n) % tasks
        if not store.record_dependencies(f"task-{i:05d}", (dependency(i, "b" if round_no % 2 else "c"),)):
            raise SystemExit(f"task-{i:05d} is missing")
    return (time.perf_counter() - start) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "9")))
    parser.add_argument("--records", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="acrtask-bench-state-") as tmp:
        homes = {"small": Path(tmp) / "small", "big": Path(tmp) / "big"}
        t0 = time.perf_counter()
        stores = {"small": fill(homes["small"], args.small), "big": fill(homes["big"], args.tasks)}
        size = (homes["big"] / "state.db").stat().st_size / 1e6
        print(f"homes written in {time.perf_counter() - t0:.1f}s: {args.small} and {args.tasks} tasks "
              f"(state.db {size:.1f} MB)", flush=True)
        counts = {"small": args.small, "big": args.tasks}
        samples: dict[str, dict[str, list[float]]] = {k: {"small": [], "big": []} for k in TARGETS}
        for which in ("small", "big"):  # warm the page cache and the interpreter's files once
            timed_cli(homes[which], "task", "list", "-o", "json")
        ratios: dict[str, list[float]] = {kind: [] for kind in TARGETS}
        for round_no in range(args.rounds):
            # Each measurement is a pair taken back to back, the order alternating, and the figure is the
            # median of the pairs' ratios: a burst of load from other processes hits both of a pair alike.
            order = ("small", "big") if round_no % 2 == 0 else ("big", "small")
            for kind in TARGETS:
                # A recording takes well under a millisecond, mostly its fsync: many small pairs, not one.
                for part in range(RECORD_PAIRS if kind == "record" else 1):
                    pair = {}
                    for which in order:
                        name = f"task-{counts[which] // 2:05d}"
                        if kind == "show":
                            pair[which] = timed_cli(homes[which], "task", "show", "-n", name)
                        elif kind == "list":
                            pair[which] = timed_cli(homes[which], "task", "list", "-o", "json")
                        else:
                            pair[which] = timed_records(stores[which], args.records // RECORD_PAIRS, counts[which],
                                                        round_no * RECORD_PAIRS + part)
                        samples[kind][which].append(pair[which])
                    ratios[kind].append(pair["big"] / pair["small"])
            print(f"  round {round_no + 1}: " + " | ".join(f"{kind} {ratios[kind][-1]:.2f}x" for kind in TARGETS),
                  flush=True)

    labels = {"show": "`task show -n NAME`", "list": "`task list -o json`",
              "record": "recording a finished run's dependencies"}
    print(f"\n{args.tasks} tasks against {args.small}, medians of {args.rounds} rounds")
    for kind, target in TARGETS.items():
        small = statistics.median(samples[kind]["small"])
        big = statistics.median(samples[kind]["big"])
        ratio = statistics.median(ratios[kind])
        verdict = "met" if ratio <= target else "MISSED"
        unit = 1000.0
        print(f"  {labels[kind]:<42} {small * unit:8.2f} ms -> {big * unit:8.2f} ms  {ratio:5.2f}x"
              f"  (target <= {target}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
