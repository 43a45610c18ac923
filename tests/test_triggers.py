"""The trigger rules as tables: what is watched, what runs for a new digest, and in which order."""

from __future__ import annotations

import pytest

from acrtask import triggers
from acrtask.model import BaseImageTriggerType, DependencyType, Task, TriggerKind
from tests.support.tasks import NEW, OLD, P_NEW, P_OLD, dep, task

BASE = "reg.local:5000/base:1"
BUILDER = "reg.local:5000/golang:1"


def test_each_base_is_watched_once_however_many_tasks_share_it() -> None:
    plan = triggers.plan([task("app-one", [dep(BASE)]), task("app-two", [dep(BASE)])])
    assert list(plan.interests) == [triggers.BaseKey("reg.local:5000", "base", "1")]
    assert [i.task for i in plan.interests[triggers.BaseKey("reg.local:5000", "base", "1")]] == ["app-one", "app-two"]


@pytest.mark.parametrize(("trigger_type", "watched"), [
    (BaseImageTriggerType.RUNTIME, {BASE}),
    (BaseImageTriggerType.ALL, {BASE, BUILDER}),
])
def test_runtime_watches_the_final_stage_and_all_watches_every_stage(trigger_type, watched) -> None:
    t = task("app-multi", [dep(BASE), dep(BUILDER, DependencyType.BUILD_TIME)], trigger_type=trigger_type)
    assert {str(k) for k in triggers.plan([t]).interests} == watched


@pytest.mark.parametrize("t", [
    task("disabled", [dep(BASE)], enabled=False),
    task("no-trigger", [dep(BASE)], trigger_enabled=False),
    task("pinned", [dep(BASE, pinned=True)]),
])
def test_disabled_tasks_disabled_triggers_and_pinned_bases_watch_nothing(t: Task) -> None:
    assert triggers.plan([t]).interests == {}


def test_a_task_that_never_ran_is_reported() -> None:
    plan = triggers.plan([task("fresh-task", None), task("off-task", None, trigger_enabled=False),
                          task("from-scratch", [])])
    assert plan.never_run == ["fresh-task"]


def interests(*tasks: Task) -> list[triggers.Interest]:
    return [i for group in triggers.plan(list(tasks)).interests.values() for i in group]


def test_a_moved_tag_runs_the_task_and_says_why() -> None:
    decision = triggers.decide(interests(task("app-task", [dep(BASE)])), NEW, lambda p: P_NEW)
    assert len(decision.runs) == 1
    name, trigger = decision.runs[0]
    assert name == "app-task"
    assert (trigger.kind, trigger.base_image, trigger.old_digest, trigger.new_digest) == (
        TriggerKind.BASE_IMAGE_UPDATE, BASE, OLD, NEW)
    assert trigger.reason() == f"base image {BASE} changed: {'a' * 12} -> {'b' * 12}"


def test_an_unchanged_tag_runs_nothing() -> None:
    assert triggers.decide(interests(task("app-task", [dep(BASE)])), OLD, lambda p: P_OLD).runs == []


def test_a_change_to_another_platform_only_refreshes_the_record() -> None:
    decision = triggers.decide(interests(task("app-task", [dep(BASE)])), NEW, lambda p: P_OLD)
    assert decision.runs == []
    assert [(r.task, r.digest, r.platform_digest) for r in decision.refreshes] == [("app-task", NEW, P_OLD)]


def test_single_platform_bases_trigger_on_the_tag_digest() -> None:
    single = dep(BASE, platform_digest=OLD)
    decision = triggers.decide(interests(task("app-task", [single])), NEW, lambda p: NEW)
    assert [name for name, _ in decision.runs] == ["app-task"]


def test_a_base_recorded_without_a_platform_digest_runs_on_any_move_without_a_lookup() -> None:
    """A copy task copies every platform: it records no platform digest, and any move re-imports."""

    def no_lookup(platform: str | None) -> str | None:
        raise AssertionError("no index lookup is needed")

    copy = dep(BASE, platform_digest=None)
    decision = triggers.decide(interests(task("node-copy", [copy])), NEW, no_lookup)
    assert [name for name, _ in decision.runs] == ["node-copy"] and decision.refreshes == []


CHAIN = [
    task("base-task", [dep("docker.io/library/alpine:3")], ("reg.local:5000/base:1",)),
    task("app-task", [dep(BASE)], ("reg.local:5000/app:latest", "reg.local:5000/app:{{.Run.ID}}")),
]


def test_chain_order() -> None:
    graph = triggers.plan(CHAIN).graph
    assert graph == {"base-task": set(), "app-task": {"base-task"}}
    assert triggers.ready(["app-task", "base-task"], set(), graph) == ["base-task"]
    assert triggers.ready(["app-task"], {"base-task"}, graph) == []
    assert triggers.ready(["app-task"], set(), graph) == ["app-task"]


def test_diamond_waits_for_both_sides() -> None:
    top = task("top-task", [dep("docker.io/library/alpine:3")], ("r.io/top:1",))
    left = task("left-task", [dep("r.io/top:1")], ("r.io/left:1",))
    right = task("right-task", [dep("r.io/top:1")], ("r.io/right:1",))
    bottom = task("bottom-task", [dep("r.io/left:1"), dep("r.io/right:1", DependencyType.BUILD_TIME)],
                  trigger_type=BaseImageTriggerType.ALL)
    graph = triggers.plan([top, left, right, bottom]).graph
    assert triggers.ready(["top-task", "bottom-task"], set(), graph) == ["top-task"]
    assert sorted(triggers.ready(["left-task", "right-task", "bottom-task"], set(), graph)) == ["left-task",
                                                                                                "right-task"]
    assert triggers.ready(["bottom-task"], {"right-task"}, graph) == []
    assert triggers.ready(["bottom-task"], set(), graph) == ["bottom-task"]


def test_a_cycle_is_reported_and_never_triggers_itself() -> None:
    one = task("cycle-one", [dep("r.io/two:1")], ("r.io/one:1",))
    two = task("cycle-two", [dep("r.io/one:1")], ("r.io/two:1",))
    self_loop = task("self-loop", [dep("r.io/self:1")], ("r.io/self:1",))
    plan = triggers.plan([one, two, self_loop])
    assert sorted(plan.cycles) == [["cycle-one", "cycle-two"], ["self-loop"]]
    assert plan.interests == {}
    assert plan.graph == {"cycle-one": set(), "cycle-two": set(), "self-loop": set()}


def test_run_id_tags_are_never_bases() -> None:
    assert triggers.stable_outputs(CHAIN[1]) == {"reg.local:5000/app:latest"}


def _comparable(plan: triggers.WatchPlan) -> tuple:
    interests = {key: sorted((i.task, i.dependency) for i in found) for key, found in plan.interests.items()}
    return (interests, sorted(plan.never_run), plan.cycles, plan.graph)


CYCLE_A = "reg.local:5000/cycle-a:1"
CYCLE_B = "reg.local:5000/cycle-b:1"
START = [
    task("base-task", [dep("reg.local:5000/os:1")], (BASE,)),
    task("app-one", [dep(BASE)]),
    task("app-two", [dep(BASE), dep(BUILDER, DependencyType.BUILD_TIME)], trigger_type=BaseImageTriggerType.ALL),
    task("never-ran", None),
    task("cycle-one", [dep(CYCLE_B)], (CYCLE_A,)),
    task("cycle-two", [dep(CYCLE_A)], (CYCLE_B,)),
]
CHANGES = {
    "a run recorded new digests": {"app-one": task("app-one", [dep(BASE, digest=NEW)])},
    "a first run recorded bases": {"never-ran": task("never-ran", [dep(BUILDER)])},
    "a trigger was disabled": {"app-two": task("app-two", [dep(BASE)], trigger_enabled=False)},
    "a task was deleted": {"app-one": None},
    "a task was created": {"new-task": task("new-task", None)},
    "outputs changed": {"app-one": task("app-one", [dep(BASE)], ("reg.local:5000/app:1",))},
    "the producer went away": {"base-task": None},
    "a cycle member moved on": {"cycle-one": task("cycle-one", [dep(CYCLE_B, digest=NEW)], (CYCLE_A,))},
    "a cycle was broken": {"cycle-two": task("cycle-two", [dep(BASE)], (CYCLE_B,))},
    "several at once": {"app-one": None, "app-two": task("app-two", [dep(BASE, digest=NEW)]),
                        "new-task": task("new-task", [dep(BASE)])},
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_replanning_what_changed_gives_the_plan_of_everything(what: str) -> None:
    before = {t.name: t for t in START}
    after = dict(before)
    for name, changed in CHANGES[what].items():
        if changed is None:
            after.pop(name)
        else:
            after[name] = changed
    previous = triggers.plan(before.values())
    snapshot = _comparable(previous)
    replanned = triggers.replan(previous, before, after, CHANGES[what])
    assert _comparable(replanned) == _comparable(triggers.plan(after.values()))
    assert _comparable(previous) == snapshot  # the old plan is left as it was (watch may still hold it)
