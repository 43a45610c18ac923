"""Watch's scheduler as tables: a sequence of events in, the decisions expected out.

`Play` is a driver in miniature: it feeds the scheduler, answers what needs an answer as loop.py does
(a QueueRun with a run ca1, ca2, ..., a RecordRefreshes with the tasks as recorded), and writes each
decision as a short line. Steps that are not events themselves (`Answer`, `Finish`, ...) say what the
world did and become the events the driver would feed (TagsChecked, RunFinished, ...).
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass, field, replace

import pytest

from acrtask import explain
from acrtask.dependency import DependencyType
from acrtask.model import BaseImageTriggerType, Task, TimerTrigger
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.run_record import Run, RunStatus, RunTrigger, TriggerKind
from acrtask.triggers import BaseKey, Interest, key_of
from acrtask.watch.checks import CheckResult
from acrtask.watch.events import (
    CancelQueued,
    CancelRunning,
    CheckTags,
    CommitSeen,
    Event,
    GraceOver,
    OtherRunPushed,
    PushEvent,
    PushSeen,
    QueueFailed,
    QueueRun,
    RecordRefreshes,
    RefreshesRecorded,
    RunFinished,
    RunInterrupted,
    RunQueued,
    Say,
    StartRun,
    Stop,
    TagsChecked,
    TasksChanged,
    TasksLoaded,
    Tick,
)
from acrtask.watch.options import WatchOptions
from acrtask.watch.scheduler import Scheduler
from tests.support.tasks import NEW, OLD, P_NEW, P_OLD, dep, task

NEWER = "sha256:" + "e" * 64
ALPINE = "docker.io/library/alpine:3"
BASE = "reg.local:5000/base:1"
TOP, LEFT, RIGHT = "r.io/top:1", "r.io/left:1", "r.io/right:1"
OPTIONS = WatchOptions(poll_min=3600, poll_max=3600, retry_first=5, max_concurrent_runs=2)


# -- steps: what the world does ---------------------------------------------------------------------------


@dataclass(frozen=True)
class At:
    """The clock reads `seconds` from now on."""

    seconds: float


@dataclass(frozen=True)
class Answer:
    """The registries answer every batch in flight: the tags in `moved` are at those digests, the others
    where the tasks recorded them; each moved tag's platform manifest is at `platform` (an exception: it
    could not be read)."""

    moved: dict[str, str] = field(default_factory=dict)
    platform: str | Exception = P_NEW
    only: str | None = None  # answer only this registry's batch


@dataclass(frozen=True)
class Finish:
    """Run `run_id` ends; first, as the runner does, it records the digests it built on (`recorded`)."""

    run_id: str
    status: RunStatus = RunStatus.SUCCEEDED
    pushed: tuple[str, ...] = ()
    recorded: dict[str, str] = field(default_factory=dict)
    lost: bool = False  # its build endpoint stopped answering


@dataclass(frozen=True)
class Disk:
    """From now on, writing a run or a task's record fails (a full disk), or works again."""

    full: bool


@dataclass(frozen=True)
class Interrupted:
    """At start, a run of `task` whose process died was found (and recorded Error)."""

    task: str
    trigger: RunTrigger
    stopped: int = 0


Step = At | Answer | Finish | Disk | Interrupted | Event


def image(name: str, digest: str = NEW) -> ImageRef:
    ref = key_of(dep(name))
    return ImageRef(ref.registry, ref.repository, ref.tag, digest)


def run_of(task_name: str, run_id: str, trigger: RunTrigger | None = None, **changes: object) -> Run:
    run = Run(run_id, task_name, RunStatus.QUEUED, trigger or RunTrigger(), "2026-01-01T00:00:00Z", pid=4242)
    return replace(run, **changes)


class Play:
    def __init__(self, tasks: list[Task], options: WatchOptions = OPTIONS) -> None:
        self.scheduler = Scheduler(options, random.Random(1))
        self.now = 0.0
        self.disk_full = False
        self.runs: dict[str, Run] = {}
        self.in_flight: dict[str, tuple[dict[BaseKey, str | None], dict[BaseKey, list[Interest]]]] = {}
        self.out: list[str] = []
        self.said: list[str] = []
        self.feed(TasksLoaded({t.name: t for t in tasks}))

    def steps(self, steps: list[Step]) -> Play:
        for step in steps:
            self.step(step)
        return self

    def step(self, step: Step) -> None:
        match step:
            case At(seconds):
                self.now = seconds
            case Disk(full):
                self.disk_full = full
            case Answer():
                for registry in [step.only] if step.only else list(self.in_flight):
                    self.feed(TagsChecked(self.answer(registry, step)))
            case Finish():
                self.finish(step)
            case Interrupted(name, trigger, stopped):
                lost = run_of(name, "ca99", trigger, status=RunStatus.RUNNING)
                self.feed(RunInterrupted(lost, stopped, run_again=True))
            case _:
                self.feed(step)

    def answer(self, registry: str, step: Answer) -> CheckResult:
        """What the registry's check thread would deliver: digests, and the platforms of tags that moved for
        the tasks on them when the check was sent."""
        batch, interests = self.in_flight.pop(registry)
        digests: dict[BaseKey, str | Exception] = {}
        platforms: dict[tuple[BaseKey, Platform | None], str | None | Exception] = {}
        for key in batch:
            digests[key] = step.moved.get(str(key), interests[key][0].dependency.digest)
            for interest in interests[key]:
                if interest.dependency.digest != digests[key]:
                    platforms[(key, interest.dependency.platform)] = step.platform
        return CheckResult(registry, batch, digests, platforms)

    def finish(self, step: Finish) -> None:
        run = self.runs[step.run_id]
        if step.recorded:
            task = self.scheduler.tasks[run.task]
            deps = tuple(replace(d, digest=step.recorded.get(str(d.image), d.digest)) for d in task.step.dependencies)
            self.feed(TasksChanged({task.name: replace(task, step=replace(task.step, base_image_dependencies=deps))}))
        self.feed(RunFinished(replace(run, status=step.status, output_images=tuple(map(image, step.pushed)),
                                      agent="ep1", agent_lost=step.lost, error=None if step.status is
                                      RunStatus.SUCCEEDED else "it failed")))

    def feed(self, event: Event) -> None:
        for decision in self.scheduler.handle(event, self.now):
            self.carry_out(decision)

    def carry_out(self, decision: object) -> None:
        match decision:
            case Say(line):
                self.said.append(line)
            case CheckTags(registry, batch):
                self.in_flight[registry] = (dict(batch), {k: list(self.scheduler.plan.interests[k]) for k in batch})
                self.out.append("check " + ", ".join(f"{k}" + (f" (pushed by {u})" if u else "")
                                                     for k, u in batch.items()))
            case QueueRun(queued, trigger):
                if self.disk_full:
                    self.out.append(f"queue {queued.name}: {describe(trigger)}: no space")
                    self.feed(QueueFailed(queued.name, OSError(errno.ENOSPC, "No space left on device")))
                    return
                run = run_of(queued.name, f"ca{len(self.runs) + 1}", trigger)
                self.runs[run.run_id] = run
                self.out.append(f"queue {run.run_id} {queued.name}: {describe(trigger)}")
                self.feed(RunQueued(queued.name, run))
            case StartRun(run, started):
                self.out.append(f"start {run.run_id} {started.name}")
            case RecordRefreshes(key, refreshes):
                self.out.append("record " + ", ".join(f"{r.task} at {r.digest[7:12]}" for r in refreshes))
                if self.disk_full:
                    self.feed(RefreshesRecorded(key, {}, OSError(errno.ENOSPC, "No space left on device")))
                    return
                tasks = {r.task: self.scheduler.tasks[r.task] for r in refreshes}
                recorded = {name: replace(t, step=replace(t.step, base_image_dependencies=tuple(
                    replace(d, digest=r.digest) if d == r.old else d for r in refreshes if r.task == name
                    for d in t.step.dependencies))) for name, t in tasks.items()}
                self.feed(RefreshesRecorded(key, recorded))
            case CancelQueued(run, reason):
                self.out.append(f"cancel {run.run_id}: {reason}")
            case CancelRunning(name):
                self.out.append(f"cancel the build of {name}")
            case _:
                raise AssertionError(f"not a decision: {decision!r}")


def describe(trigger: RunTrigger) -> str:
    if trigger.kind is TriggerKind.BASE_IMAGE_UPDATE:
        return f"{trigger.base_image} moved" + (f" (pushed by {trigger.upstream_run_id})"
                                                if trigger.upstream_run_id else "")
    return explain.reason(trigger)


def with_timer(t: Task, schedule: str = "* * * * *") -> Task:
    return replace(t, trigger=replace(t.trigger, timers=(TimerTrigger("t1", schedule),)))


MOVED = RunTrigger(kind=TriggerKind.BASE_IMAGE_UPDATE, base_image=ImageRef.parse(BASE), old_digest=OLD, new_digest=NEW)
COMMIT = CommitSeen("app", RunTrigger(kind=TriggerKind.COMMIT, commit_id="c0ffee"))
APP = task("app", [dep(BASE)])
CHAIN = [task("base-task", [dep(ALPINE)], (BASE,)), task("app-task", [dep(BASE)])]
DIAMOND = [
    task("top-task", [dep(ALPINE)], (TOP,)),
    task("left-task", [dep(TOP)], (LEFT,)),
    task("right-task", [dep(TOP)], (RIGHT,)),
    task("bottom-task", [dep(LEFT), dep(RIGHT, DependencyType.BUILD_TIME)], trigger_type=BaseImageTriggerType.ALL),
]
UNTAGGED = replace(image(BASE), tag=None)  # pushed by digest only
ARM64 = Platform.parse("linux/arm64")
FIRST_LOOK = [Tick(), Answer()]  # every base checked once at start, nothing moved

# name: (tasks, steps, the decisions expected out)
TABLE: dict[str, tuple[list[Task], list[Step], list[str]]] = {
    "every base is checked at start, each registry in a batch of its own": (
        CHAIN, [Tick()], ["check docker.io/library/alpine:3", "check reg.local:5000/base:1"]),
    "a moved base queues its task, which starts at the next tick": (
        [APP], [Tick(), Answer({BASE: NEW}), Tick()],
        ["check reg.local:5000/base:1", "queue ca1 app: reg.local:5000/base:1 moved", "start ca1 app"]),
    "nothing moved, nothing runs, nothing is checked before the next poll": (
        [APP], [*FIRST_LOOK, At(3599), Tick(), At(3600), Tick()],
        ["check reg.local:5000/base:1", "check reg.local:5000/base:1"]),
    "a chain: the upstream's push is checked at once and runs its dependent, naming the upstream run": (
        CHAIN, [Tick(), Answer({ALPINE: NEW}), Tick(), Finish("ca1", pushed=(BASE,)), Tick(), Answer({BASE: NEW}),
                Tick()],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1",
         "queue ca1 base-task: docker.io/library/alpine:3 moved", "start ca1 base-task",
         "check reg.local:5000/base:1 (pushed by ca1)",
         "queue ca2 app-task: reg.local:5000/base:1 moved (pushed by ca1)",
         "start ca2 app-task"]),
    "a chain whose bases moved together: the dependent waits for its upstream's run, and builds once": (
        CHAIN, [Tick(), Answer({ALPINE: NEW, BASE: NEW}), Tick(), Tick(), Finish("ca1", pushed=(BASE,)), Tick(),
                Answer({BASE: NEWER}), Finish("ca2", recorded={BASE: NEWER}), Tick(), Answer({BASE: NEWER}), Tick()],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1",
         "queue ca1 base-task: docker.io/library/alpine:3 moved", "queue ca2 app-task: reg.local:5000/base:1 moved",
         "start ca1 base-task", "check reg.local:5000/base:1 (pushed by ca1)", "start ca2 app-task",
         "check reg.local:5000/base:1"]),
    "a diamond builds each task once, the bottom after both sides": (
        DIAMOND, [Tick(), Answer({ALPINE: NEW}), Tick(), Finish("ca1", pushed=(TOP,)), Tick(), Answer({TOP: NEW}),
                  Tick(), Finish("ca2", pushed=(LEFT,)), Tick(), Answer({LEFT: NEW}), Tick(),
                  Finish("ca3", pushed=(RIGHT,)), Tick(), Answer({RIGHT: NEW}),
                  Finish("ca4", recorded={LEFT: NEW, RIGHT: NEW}), Tick(), Answer({RIGHT: NEW}), Tick()],
        ["check docker.io/library/alpine:3", "check r.io/left:1, r.io/right:1, r.io/top:1",
         "queue ca1 top-task: docker.io/library/alpine:3 moved", "start ca1 top-task",
         "check r.io/top:1 (pushed by ca1)",
         "queue ca2 left-task: r.io/top:1 moved (pushed by ca1)",
         "queue ca3 right-task: r.io/top:1 moved (pushed by ca1)",
         "start ca2 left-task", "start ca3 right-task", "check r.io/left:1 (pushed by ca2)",
         "queue ca4 bottom-task: r.io/left:1 moved (pushed by ca2)", "check r.io/right:1 (pushed by ca3)",
         "start ca4 bottom-task", "check r.io/right:1"]),
    "a base moving during a build is checked again after it, and runs once more": (
        [APP], [Tick(), Answer({BASE: NEW}), Tick(), PushSeen((PushEvent("acr", "base", "1"),)), Tick(),
                Answer({BASE: NEWER}), Tick(), Finish("ca1", recorded={BASE: NEW}), Tick(), Answer({BASE: NEWER}),
                Tick()],
        ["check reg.local:5000/base:1", "queue ca1 app: reg.local:5000/base:1 moved", "start ca1 app",
         "check reg.local:5000/base:1", "check reg.local:5000/base:1", "queue ca2 app: reg.local:5000/base:1 moved",
         "start ca2 app"]),
    "a base that moved during a build the build already used runs nothing more": (
        [APP], [Tick(), Answer({BASE: NEW}), Tick(), PushSeen((PushEvent("acr", "base", "1"),)), Tick(),
                Answer({BASE: NEWER}), Finish("ca1", recorded={BASE: NEWER}), Tick(), Answer({BASE: NEWER}), Tick()],
        ["check reg.local:5000/base:1", "queue ca1 app: reg.local:5000/base:1 moved", "start ca1 app",
         "check reg.local:5000/base:1", "check reg.local:5000/base:1"]),
    "at most one queued run per task: timers and a commit during a build queue one run after it": (
        [with_timer(APP)], [*FIRST_LOOK, At(60), Tick(), At(120), Tick(commits=(COMMIT,)), At(180), Tick(),
                            Finish("ca1"), Tick()],
        ["check reg.local:5000/base:1", "queue ca1 app: timer t1 (1970-01-01T00:01:00.000000Z)", "start ca1 app",
         "queue ca2 app: timer t1 (1970-01-01T00:02:00.000000Z)", "start ca2 app"]),
    "a webhook push of a watched tag checks it at once; other tags are not checked": (
        [APP], [*FIRST_LOOK, PushSeen((PushEvent("distribution", "base", "1"), PushEvent("distribution", "x", "1"))),
                Tick()],
        ["check reg.local:5000/base:1", "check reg.local:5000/base:1"]),
    "a push by another process's run checks its image at once, naming that run": (
        CHAIN, [*FIRST_LOOK, OtherRunPushed(run_of("base-task", "ca7", output_images=(image(BASE),))), Tick(),
                Answer({BASE: NEW})],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1",
         "check reg.local:5000/base:1 (pushed by ca7)",
         "queue ca1 app-task: reg.local:5000/base:1 moved (pushed by ca7)"]),
    "a push by another process's run of an image without a tag (by digest only) checks nothing at once": (
        CHAIN, [*FIRST_LOOK, OtherRunPushed(run_of("base-task", "ca7", output_images=(UNTAGGED,))), Tick()],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1"]),
    "builds at once are bounded: the third waits for a free slot": (
        [task(n, [dep(BASE)]) for n in ("one", "two", "three")],
        [Tick(), Answer({BASE: NEW}), Tick(), Finish("ca2"), Tick()],
        ["check reg.local:5000/base:1", "queue ca1 one: reg.local:5000/base:1 moved",
         "queue ca2 two: reg.local:5000/base:1 moved", "queue ca3 three: reg.local:5000/base:1 moved",
         "start ca1 one", "start ca2 two", "start ca3 three"]),
    "a run finishing failed pushes nothing: its dependents do not run": (
        CHAIN, [Tick(), Answer({ALPINE: NEW}), Tick(), Finish("ca1", RunStatus.FAILED), Tick()],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1",
         "queue ca1 base-task: docker.io/library/alpine:3 moved", "start ca1 base-task"]),
    "a triggered run that lost its build endpoint runs again, once": (
        [APP], [Tick(), Answer({BASE: NEW}), Tick(), Finish("ca1", RunStatus.FAILED, lost=True), Tick(),
                Finish("ca2", RunStatus.FAILED, lost=True), Tick()],
        ["check reg.local:5000/base:1", "queue ca1 app: reg.local:5000/base:1 moved", "start ca1 app",
         "queue ca2 app: reg.local:5000/base:1 moved", "start ca2 app"]),
    "a task removed while queued is canceled, not started": (
        CHAIN, [Tick(), Answer({ALPINE: NEW, BASE: NEW}), TasksChanged({"app-task": None}), Tick(), Finish("ca1"),
                Tick()],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1",
         "queue ca1 base-task: docker.io/library/alpine:3 moved", "queue ca2 app-task: reg.local:5000/base:1 moved",
         "start ca1 base-task", "cancel ca2: the task was deleted before it ran"]),
    "cancellation: a stop cancels queued runs at once and running builds when the grace period is over": (
        CHAIN, [Tick(), Answer({ALPINE: NEW, BASE: NEW}), Tick(), Stop(), Tick(), GraceOver(),
                Finish("ca1", RunStatus.CANCELED)],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1",
         "queue ca1 base-task: docker.io/library/alpine:3 moved", "queue ca2 app-task: reg.local:5000/base:1 moved",
         "start ca1 base-task", "cancel ca2: watch stopped before it ran", "cancel the build of base-task"]),
    "a platform that did not move under a moved index is recorded, and runs nothing": (
        [APP], [Tick(), Answer({BASE: NEW}, platform=P_OLD), Tick()],
        ["check reg.local:5000/base:1", "record app at bbbbb"]),
    "runs beside a refresh wait for it to be recorded": (
        [APP, task("other", [dep(BASE, platform_digest=P_NEW)])], [Tick(), Answer({BASE: NEW}, platform=P_NEW)],
        ["check reg.local:5000/base:1", "record other at bbbbb", "queue ca1 app: reg.local:5000/base:1 moved"]),
    "a refresh that cannot be recorded holds its runs; the tag is tried again": (
        [APP, task("other", [dep(BASE, platform_digest=P_NEW)])],
        [Tick(), Disk(full=True), Answer({BASE: NEW}, platform=P_NEW), Disk(full=False), At(5), Tick(),
         Answer({BASE: NEW}, platform=P_NEW)],
        ["check reg.local:5000/base:1", "record other at bbbbb", "check reg.local:5000/base:1",
         "record other at bbbbb", "queue ca1 app: reg.local:5000/base:1 moved"]),
    "a run that cannot be queued is tried again after a backoff, doubling": (
        [APP], [Tick(), Disk(full=True), Answer({BASE: NEW}), At(4.9), Tick(), At(5), Tick(), At(14.9), Tick(),
                Disk(full=False), At(15), Tick()],
        ["check reg.local:5000/base:1", "queue app: reg.local:5000/base:1 moved: no space",
         "queue app: reg.local:5000/base:1 moved: no space", "queue ca1 app: reg.local:5000/base:1 moved",
         "start ca1 app"]),
    "the tasks on a tag changed while it was checked: it is checked again before anything runs": (
        [APP], [Tick(), TasksChanged({"arm": task("arm", [replace(dep(BASE), platform=ARM64)])}),
                Answer({BASE: NEW}), Tick(), Answer({BASE: NEW})],
        ["check reg.local:5000/base:1", "check reg.local:5000/base:1", "queue ca1 app: reg.local:5000/base:1 moved",
         "queue ca2 arm: reg.local:5000/base:1 moved"]),
    "platform manifests that cannot be read run nothing": (
        [APP], [Tick(), Answer({BASE: NEW}, platform=ConnectionError("registry went away")), Tick()],
        ["check reg.local:5000/base:1"]),
    "runs interrupted by a process that died run again at start, unless they were manual": (
        [APP, task("by-hand", [dep(BASE)])],
        [Interrupted("app", MOVED), Interrupted("by-hand", RunTrigger()), Tick()],
        ["queue ca1 app: reg.local:5000/base:1 moved", "check reg.local:5000/base:1", "start ca1 app"]),
    "the newest push names the run, whatever the order its record was read in": (
        CHAIN, [*FIRST_LOOK, OtherRunPushed(run_of("base-task", "ca8", output_images=(image(BASE),))),
                OtherRunPushed(run_of("base-task", "ca9", output_images=(image(BASE),))), Tick()],
        ["check docker.io/library/alpine:3", "check reg.local:5000/base:1",
         "check reg.local:5000/base:1 (pushed by ca9)"]),
    "a commit queues a run": (
        [APP], [*FIRST_LOOK, Tick(commits=(COMMIT,))],
        ["check reg.local:5000/base:1", "queue ca1 app: commit c0ffee", "start ca1 app"]),
}


@pytest.mark.parametrize("what", list(TABLE))
def test_scheduler(what: str) -> None:
    tasks, steps, expected = TABLE[what]
    assert Play(tasks).steps(steps).out == expected


# -- what is said, and what counts as a failed run -----------------------------------------------------------


def lines(play: Play, *starts: str) -> list[str]:
    return [line for line in play.said if line.startswith(starts)]


def test_watching_is_said_once_every_base_watched_at_start_has_been_checked_once() -> None:
    play = Play(CHAIN).steps([Tick(), Answer(only="docker.io")])
    assert lines(play, "Watching") == []
    play.steps([Answer(only="reg.local:5000"), *FIRST_LOOK, Tick()])
    assert lines(play, "Watching") == ["Watching 2 base image tag(s) for 2 task(s)."]


def test_watching_waits_for_no_base_that_is_no_longer_watched() -> None:
    play = Play(CHAIN).steps([Tick(), TasksChanged({"app-task": None}), Answer(only="docker.io")])
    assert lines(play, "Watching") == ["Watching 1 base image tag(s) for 1 task(s)."]


def test_without_bases_watching_is_said_at_the_first_tick() -> None:
    play = Play([task("fresh", None)])
    assert lines(play, "Watching", "Task") == [
        "Task fresh has not run yet, so its base images are not known: run it once with 'acrtask task run -n fresh'."]
    play.steps([Tick(), Tick()])
    assert lines(play, "Watching") == ["Watching 0 base image tag(s) for 1 task(s)."]


def test_the_lines_of_a_run_from_its_trigger_to_its_end() -> None:
    play = Play(CHAIN).steps([*FIRST_LOOK, PushSeen((PushEvent("distribution", "library/alpine", "3"),)), Tick(),
                              Answer({ALPINE: NEW}), Tick(), Finish("ca1", pushed=(BASE,))])
    assert play.said[-4:] == [
        "Notified by distribution: docker.io/library/alpine:3 was pushed; checking now.",
        "Queued run ca1 of base-task: base image docker.io/library/alpine:3 changed: aaaaaaaaaaaa -> bbbbbbbbbbbb",
        "Started run ca1 of base-task.",
        "Run ca1 of base-task succeeded after 0s."]


@pytest.mark.parametrize(("once", "then", "failed"), [
    (False, "watch goes on and tries again (first in 5s) until it can. Free the disk or raise the open-file limit.",
     0),
    (True, "free the disk or raise the open-file limit, and run again.", 1),  # --once does not wait for the disk
])
def test_a_run_that_cannot_be_queued_is_one_error_line_however_many_tries(once: bool, then: str, failed: int) -> None:
    play = Play([APP], replace(OPTIONS, once=once))
    play.steps([Tick(), Disk(full=True), Answer({BASE: NEW}), At(5), Tick(), At(15), Tick()])
    assert lines(play, "ERROR") == [
        "ERROR: Could not queue a run of app (base image reg.local:5000/base:1 changed: aaaaaaaaaaaa -> "
        f"bbbbbbbbbbbb): [Errno 28] No space left on device. It was not started; {then}"]
    assert sum(line.endswith("no space") for line in play.out) == (1 if once else 3)  # tried again unless --once
    assert play.scheduler.failed_runs == failed


def test_a_run_queued_again_after_its_endpoint_was_lost_is_told() -> None:
    play = Play([APP]).steps([Tick(), Answer({BASE: NEW}), Tick(), Finish("ca1", RunStatus.FAILED, lost=True)])
    assert lines(play, "Run ca1") == ["Run ca1 of app failed after 0s: it failed",
                                      "Run ca1 of app lost its build endpoint ep1; queued it again as ca2 (once)."]


def test_a_trigger_queued_during_the_build_is_the_run_again_after_a_lost_endpoint() -> None:
    play = Play([with_timer(APP)]).steps([Tick(), Answer({BASE: NEW}), Tick(), At(60), Tick(),
                                          Finish("ca1", RunStatus.FAILED, lost=True), Tick()])
    assert play.out[-2:] == ["queue ca2 app: timer t1 (1970-01-01T00:01:00.000000Z)", "start ca2 app"]
    assert lines(play, "Run ca1 of app lost") == [
        "Run ca1 of app lost its build endpoint ep1; queued it again as ca2 (once)."]
    assert play.scheduler.failed_runs == 0


def test_runs_interrupted_at_start_are_told() -> None:
    play = Play([APP]).steps([Interrupted("app", MOVED, stopped=2)])
    assert play.said[-4:] == [
        "Stopped 2 leftover build process(es) of run ca99.",
        "Run ca99 of app was interrupted: its process (pid 4242) is gone; recorded Error.",
        "Queuing the trigger of interrupted run ca99 of app again.",
        "Queued run ca1 of app: base image reg.local:5000/base:1 changed: aaaaaaaaaaaa -> bbbbbbbbbbbb"]


def test_builds_ending_on_shutdown_are_told_and_only_failures_count() -> None:
    play = Play([task(n, [dep(BASE)]) for n in ("one", "two")]).steps([
        Tick(), Answer({BASE: NEW}), Tick(), Stop(), GraceOver(), Finish("ca1", RunStatus.CANCELED),
        Finish("ca2", RunStatus.FAILED)])
    assert lines(play, "Run") == ["Run ca1 of one ended Canceled on shutdown.",
                                  "Run ca2 of two ended Failed on shutdown."]
    assert play.scheduler.failed_runs == 1 and not play.scheduler.running


FAILED_RUNS = {
    "a run that succeeded": ([Finish("ca1")], 0),
    "a run that failed": ([Finish("ca1", RunStatus.FAILED)], 1),
    "a run that timed out": ([Finish("ca1", RunStatus.TIMEOUT)], 1),
    "a run queued again after its endpoint was lost, then succeeded": (
        [Finish("ca1", RunStatus.FAILED, lost=True), Tick(), Finish("ca2")], 0),
    "a run queued again that lost its endpoint again": (
        [Finish("ca1", RunStatus.FAILED, lost=True), Tick(), Finish("ca2", RunStatus.FAILED, lost=True)], 1),
    "a run whose endpoint was lost, queued again on a full disk": (
        [Disk(full=True), Finish("ca1", RunStatus.FAILED, lost=True)], 1),
}


@pytest.mark.parametrize("what", list(FAILED_RUNS))
def test_failed_runs(what: str) -> None:
    steps, expected = FAILED_RUNS[what]
    assert Play([APP]).steps([Tick(), Answer({BASE: NEW}), Tick(), *steps]).scheduler.failed_runs == expected


def test_a_cycle_is_told_when_it_appears_not_on_every_change() -> None:
    one = task("cycle-one", [dep("r.io/two:1")], ("r.io/one:1",))
    two = task("cycle-two", [dep("r.io/one:1")], ("r.io/two:1",))
    play = Play([one, two]).steps([TasksChanged({"cycle-one": one})])
    assert lines(play, "Cycle") == [
        "Cycle: cycle-one -> cycle-two build on each other's images; their pushes will not trigger each other."]


def test_the_picture_shows_bases_running_and_queued_runs() -> None:
    play = Play([task(n, [dep(BASE)]) for n in ("one", "two", "three")]).steps([Tick(), Answer({BASE: NEW}), Tick()])
    picture = play.scheduler.picture()
    assert (picture.running, picture.queued) == ((("ca1", "one"), ("ca2", "two")), ("three",))
    assert [(b.image, b.tasks, b.digest) for b in picture.bases] == [(BASE, ("one", "two", "three"), NEW)]
    assert picture.last_trigger == ("three: base image reg.local:5000/base:1 changed: aaaaaaaaaaaa -> "
                                    "bbbbbbbbbbbb")
