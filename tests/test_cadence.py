"""The poll schedules as tables: which registries are fast, which stay on the slow random interval, and what
the watch loop does with them (real polling of a real registry is in tests/integration/test_fast_poll.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from acrtask.errors import ValidationError
from acrtask.model import Task
from acrtask.triggers import BaseKey
from acrtask.watch.cadence import PollSchedule, Speed, is_public, parse_marks, schedule_of
from acrtask.watch.loop import Watcher, WatchOptions
from tests.support.tasks import NEW, OLD, P_NEW, P_OLD, dep, task
from tests.support.watch_fakes import LogLines, RecordingExecutor, ScriptedRegistry, make

OWN = "registry.example.com"

SCHEDULES = [
    # registry, marked, pushed to, speed, why
    ("docker.io", {"docker.io"}, {"docker.io"}, Speed.SLOW, "public registry"),
    ("registry-1.docker.io", set(), set(), Speed.SLOW, "public registry"),
    ("mcr.microsoft.com", set(), {"mcr.microsoft.com"}, Speed.SLOW, "public registry"),
    ("ghcr.io", set(), set(), Speed.SLOW, "public registry"),
    ("quay.io", set(), set(), Speed.SLOW, "public registry"),
    ("gcr.io", set(), set(), Speed.SLOW, "public registry"),
    ("eu.gcr.io", set(), set(), Speed.SLOW, "public registry"),
    (OWN, {OWN}, set(), Speed.FAST, "marked fast"),
    (f"{OWN}:5000", {OWN}, set(), Speed.FAST, "marked fast"),  # a bare host covers its ports
    (f"{OWN}:5000", {f"{OWN}:443"}, set(), Speed.SLOW, "not a registry tasks push to"),
    ("localhost:5000", set(), {"localhost:5000"}, Speed.FAST, "tasks push there"),
    ("myreg.azurecr.io", set(), set(), Speed.SLOW, "not a registry tasks push to"),
    ("ghcr.io.example.com", set(), {"ghcr.io.example.com"}, Speed.FAST, "tasks push there"),
]


@pytest.mark.parametrize(("registry", "marked", "pushed", "speed", "why"), SCHEDULES,
                         ids=[f"{s[0]}-{s[4]}" for s in SCHEDULES])
def test_schedule_rules(registry: str, marked: set[str], pushed: set[str], speed: Speed, why: str) -> None:
    found = schedule_of(registry, frozenset(marked), frozenset(pushed))
    assert found.speed is speed
    assert found.why.startswith(why)


def test_public_registries_are_the_five_and_their_aliases() -> None:
    assert all(is_public(r) for r in ("docker.io", "index.docker.io", "mcr.microsoft.com", "ghcr.io", "quay.io",
                                      "gcr.io", "us.gcr.io", "QUAY.IO"))
    assert not any(is_public(r) for r in ("localhost:5000", "myreg.azurecr.io", "quay.example.com", "[::1]:5000"))


def test_marks_from_flags_and_the_environment() -> None:
    marks = parse_marks(["Registry.Example.com", "localhost:5000"], {"ACRTASK_FAST_REGISTRIES": " a.example , b:1,"})
    assert marks == {"registry.example.com", "localhost:5000", "a.example", "b:1"}
    with pytest.raises(ValidationError, match="a public registry stays on the --poll-interval schedule"):
        parse_marks(["docker.io"], {})
    with pytest.raises(ValidationError, match="a public registry"):
        parse_marks([], {"ACRTASK_FAST_REGISTRIES": "ghcr.io"})
    for bad in ("https://x.example", "x.example/path", "bad host", ":5000"):
        with pytest.raises(ValidationError, match="expected a registry host"):
            parse_marks([bad], {})


def test_fast_bases_come_back_after_the_fast_interval_and_slow_ones_at_random() -> None:
    schedule = PollSchedule(frozenset(), 30.0, (600.0, 3600.0), random.Random(7))
    own, public = BaseKey("localhost:5000", "base", "1"), BaseKey("docker.io", "library/node", "20")
    tasks = [task("app-task", [dep("localhost:5000/base:1")], ("localhost:5000/app:latest",))]
    due = {own: 5000.0, public: 5000.0}
    lines = schedule.update([own, public], tasks, due, now=1000.0)
    assert lines == [
        "Schedule: docker.io is polled every 10m-60m at random (slow: public registry): 1 base tag(s): "
        "library/node:20.",
        "Schedule: localhost:5000 is polled every 30s (fast: tasks push there): 1 base tag(s): base:1.",
    ]
    assert due == {own: 1030.0, public: 5000.0}  # a base that became fast is brought forward
    assert schedule.interval(own) == 30.0
    draws = {schedule.interval(public) for _ in range(20)}
    assert len(draws) > 1 and all(600.0 <= d <= 3600.0 for d in draws)
    assert schedule.update([own, public], tasks, due, now=1000.0) == []  # said once, until something changes


def watcher_on(tmp_path: Path, tasks: list[Task], options: WatchOptions,
               clock: list[float]) -> tuple[Watcher, ScriptedRegistry, RecordingExecutor]:
    """A watcher on a clock the test sets, opened (its tasks read), over a registry where nothing moved yet."""
    registry = ScriptedRegistry(OLD, P_OLD)
    watcher, executor, _ = make(tmp_path, tasks, registry, options=options, clock=lambda: clock[0])
    assert isinstance(executor, RecordingExecutor)
    watcher.open()
    return watcher, registry, executor


def tick(watcher: Watcher) -> None:
    """One pass of the loop; then the check results it sent for (each registry's come back from a thread of
    its own, as an event) are taken in, and a second pass starts what they triggered."""
    watcher.tick()
    for _ in range(1000):  # each wait takes one event, or times out within a second
        if not watcher.scheduler.checking:
            break
        watcher.wait()
    watcher.tick()


def test_the_watch_loop_polls_own_registries_fast_and_public_ones_slow(tmp_path: Path) -> None:
    own = BaseKey("localhost:5000", "base", "1")
    marked = BaseKey("other.example.com:5000", "tools", "1")
    public = BaseKey("docker.io", "library/node", "20")
    tasks = [
        task("base-task", [dep("docker.io/library/node:20")], ("localhost:5000/base:1",)),
        task("app-task", [dep("localhost:5000/base:1"), dep("other.example.com:5000/tools:1")],
             ("localhost:5000/app:latest",)),
    ]
    clock = [1_000.0]
    options = WatchOptions(poll_min=600, poll_max=3600, fast_interval=30.0,
                           fast_registries=frozenset({"other.example.com"}))
    watcher, registry, _ = watcher_on(tmp_path, tasks, options, clock)
    next_check = watcher.scheduler.tags.next_check
    assert isinstance(watcher.view, LogLines)
    assert [line.split(" is polled ")[1].split(":")[0] for line in watcher.view.lines
            if line.startswith("Schedule")] == ["every 10m-60m at random (slow", "every 30s (fast", "every 30s (fast"]
    tick(watcher)  # every base is due at start
    assert next_check[own] == next_check[marked] == 1_030.0
    assert 1_600.0 <= next_check[public] <= 4_600.0
    # Each fast tick checks the fast bases again; the public one waits for its own time.
    registry.heads.clear()
    for step in range(1, 4):
        clock[0] = 1_000.0 + 30.0 * step
        tick(watcher)
    assert registry.heads.count(own) == registry.heads.count(marked) == 3
    assert public not in registry.heads
    assert not watcher.queued  # nothing moved: nothing runs
    watcher.close()


def test_a_moved_base_on_a_fast_registry_triggers_at_the_next_fast_check(tmp_path: Path) -> None:
    clock = [1_000.0]
    tasks = [task("app-task", [dep("localhost:5000/base:1")], ("localhost:5000/app:latest",))]
    watcher, registry, executor = watcher_on(tmp_path, tasks, WatchOptions(fast_interval=30.0), clock)
    tick(watcher)  # the first check: nothing moved
    assert not watcher.queued
    registry.digest, registry.platform = NEW, P_NEW  # pushed by another tool: no webhook, no acrtask run
    clock[0] = 1_029.0
    tick(watcher)
    assert not watcher.queued
    clock[0] = 1_030.0
    tick(watcher)
    assert "app-task" in watcher.queued or "app-task" in watcher.running
    watcher.close()  # lets the recorded run finish
    assert [(name, trigger.new_digest) for name, trigger in executor.order] == [("app-task", NEW)]
