"""Pure decisions of the base-image trigger: what is watched, what a new digest triggers, in which order.

No I/O and no clock here: the watch loop feeds observations in and carries decisions out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from acrtask.dependency import BaseImageDependency, DependencyType
from acrtask.model import BaseImageTriggerType, Status, Task
from acrtask.multistep.templates import RunValues, stable_name
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.run_record import RunTrigger, TriggerKind

# One tag to check (an ImageRef without a digest): one HEAD request, however many tasks and platforms share it.
BaseKey = ImageRef


@dataclass(frozen=True)
class Interest:
    """One task's recorded dependency on a base tag."""

    task: str
    dependency: BaseImageDependency


def key_of(dep: BaseImageDependency) -> BaseKey:
    return dep.image


def _watched_name(dep: BaseImageDependency) -> str | None:
    """The tag a dependency builds on, as the names tasks push are written; None for FROM image@sha256:..."""
    return str(dep.image) if dep.image.tag is not None else None


def triggering_dependencies(task: Task) -> list[BaseImageDependency]:
    """The dependencies that can trigger this task: Runtime only, or all under type All; never pinned ones."""
    if task.status is not Status.ENABLED or task.trigger.base_image.status is not Status.ENABLED:
        return []
    wanted = task.trigger.base_image.type
    return [
        dep for dep in task.step.dependencies
        if not dep.pinned and dep.image.tag
        and (wanted is BaseImageTriggerType.ALL or dep.type is DependencyType.RUNTIME)
    ]


def stable_outputs(task: Task) -> set[str]:
    """Output tags that can be another task's base: not the ones that change every run ({{.Run.ID}})."""
    run = RunValues(id="", registry=task.registry, os=task.platform.os, architecture=task.platform.architecture,
                    task_name=task.name)
    names = (stable_name(name, run) for name in task.qualified_image_names)  # short names under the registry
    return {name for name in names if name is not None}


def dependency_graph(tasks: Iterable[Task]) -> dict[str, set[str]]:
    """task -> the tasks whose pushed images it builds on (any stage), for ordering runs."""
    task_list = list(tasks)
    producers: dict[str, set[str]] = {}
    for task in task_list:
        for image in stable_outputs(task):
            producers.setdefault(image, set()).add(task.name)
    graph: dict[str, set[str]] = {}
    for task in task_list:
        graph[task.name] = {p for dep in task.step.dependencies if (name := _watched_name(dep))
                            for p in producers.get(name, ())}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups that would rebuild each other for ever (Tarjan), self-loops included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for upstream in sorted(graph.get(node, ())):
            if upstream not in index:
                visit(upstream)
                low[node] = min(low[node], low[upstream])
            elif upstream in on_stack:
                low[node] = min(low[node], index[upstream])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def acyclic(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the edges inside cycles: those never order nor trigger anything."""
    groups = [set(group) for group in cycles(graph)]
    member_of = {name: group for group in groups for name in group}
    return {
        node: {u for u in upstream if not (node in member_of and u in member_of[node])}
        for node, upstream in graph.items()
    }


@dataclass
class WatchPlan:
    """What the watch loop checks: each base once, with every task interested in it."""

    interests: dict[BaseKey, list[Interest]] = field(default_factory=dict)
    never_run: list[str] = field(default_factory=list)  # tasks whose dependencies are not known yet
    cycles: list[list[str]] = field(default_factory=list)
    graph: dict[str, set[str]] = field(default_factory=dict)  # acyclic: task -> upstream tasks
    cycle_images: dict[str, set[str]] = field(default_factory=dict)  # task in a cycle -> its cycle's images


def plan(tasks: Iterable[Task]) -> WatchPlan:
    task_list = list(tasks)
    full = dependency_graph(task_list)
    result = WatchPlan(cycles=cycles(full), graph=acyclic(full))
    outputs = {task.name: stable_outputs(task) for task in task_list}
    # Per task in a cycle: every image its cycle peers (itself included) push. Linear, not tasks x tasks.
    for group in result.cycles:
        images = {image for peer in group for image in outputs.get(peer, ())}
        for name in group:
            result.cycle_images.setdefault(name, set()).update(images)
    for task in task_list:
        _add_interests(result, task)
    return result


def _add_interests(result: WatchPlan, task: Task, shared: bool = False) -> None:
    """Add the task's interests. `shared`: the lists may belong to another plan, so copy before adding."""
    watching = task.status is Status.ENABLED and task.trigger.base_image.status is Status.ENABLED
    if watching and task.step.base_image_dependencies is None:
        result.never_run.append(task.name)
    for dep in triggering_dependencies(task):
        # A base that a cycle peer pushes would rebuild the cycle for ever: never let it trigger.
        if _watched_name(dep) in result.cycle_images.get(task.name, ()):
            continue
        key = key_of(dep)
        if shared:
            result.interests[key] = list(result.interests.get(key, ()))
        result.interests.setdefault(key, []).append(Interest(task.name, dep))


def graph_edges(task: Task | None) -> tuple[frozenset[str], frozenset[str]]:
    """What of a task shapes the graph: the stable images it pushes and the images it builds on."""
    if task is None:
        return frozenset(), frozenset()
    return frozenset(stable_outputs(task)), frozenset(str(dep.image) for dep in task.step.dependencies)


def replan(previous: WatchPlan, before: Mapping[str, Task], after: Mapping[str, Task],
           changed: Iterable[str]) -> WatchPlan:
    """The plan once the `changed` tasks went from `before` to `after` (None: deleted).

    When no changed task pushes or builds on other images than before (a run recorded new digests,
    a timer or a status changed), the graph is the same and only those tasks' interests are redone;
    otherwise everything is planned again."""
    names = list(changed)
    if any(graph_edges(before.get(name)) != graph_edges(after.get(name)) for name in names):
        return plan(after.values())
    gone = set(names)
    result = WatchPlan(interests=dict(previous.interests), cycles=previous.cycles, graph=dict(previous.graph),
                       cycle_images=previous.cycle_images,
                       never_run=[name for name in previous.never_run if name not in gone])
    for name in names:
        old = before.get(name)
        for key in {key_of(dep) for dep in (old.step.dependencies if old else ())}:
            kept = [i for i in result.interests.get(key, ()) if i.task != name]
            if kept:
                result.interests[key] = kept
            else:
                result.interests.pop(key, None)
    for name in names:
        task = after.get(name)
        if task is None:
            result.graph.pop(name, None)
            continue
        result.graph.setdefault(name, set())
        _add_interests(result, task, shared=True)
    return result


@dataclass(frozen=True)
class Refresh:
    """An index moved but not the task's platform: record the new digests, run nothing."""

    task: str
    old: BaseImageDependency
    digest: str
    platform_digest: str | None


@dataclass
class Decision:
    runs: list[tuple[str, RunTrigger]] = field(default_factory=list)
    refreshes: list[Refresh] = field(default_factory=list)


def changed(interests: Iterable[Interest], digest: str) -> list[Interest]:
    """Interests whose recorded tag digest differs from what the registry says now."""
    return [i for i in interests if i.dependency.digest != digest]


def decide(interests: Iterable[Interest], digest: str, platform_digest: Callable[[Platform | None], str | None],
           upstream_run_id: str | None = None) -> Decision:
    """Which tasks run for a tag now at `digest`.

    `platform_digest(platform)` gives the manifest digest for a platform under the new tag digest
    (the tag digest itself for a single-platform image). A task runs when its platform's manifest
    moved; when only other platforms of a multi-arch index moved, its record is refreshed instead.
    """
    decision = Decision()
    running: set[str] = set()
    for interest in changed(interests, digest):
        dep = interest.dependency
        if interest.task in running:  # two build steps of one multi-step task on this base: one run
            continue
        # No platform digest recorded (a copy task takes every platform): any move runs it, no lookup.
        if dep.platform_digest is not None:
            new_platform_digest = platform_digest(dep.platform)
            if new_platform_digest == dep.platform_digest:
                decision.refreshes.append(Refresh(interest.task, dep, digest, new_platform_digest))
                continue
        running.add(interest.task)
        decision.runs.append((interest.task, RunTrigger(
            kind=TriggerKind.BASE_IMAGE_UPDATE, base_image=dep.image, old_digest=dep.digest, new_digest=digest,
            upstream_run_id=upstream_run_id, base_image_step=dep.step,
        )))
    return decision


def ancestors(task: str, graph: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(task, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def ready(pending: Iterable[str], busy: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """Pending tasks that may start now: none of their upstream tasks is pending or running.

    A task waiting on its upstream is then triggered by the upstream's push and runs once, on the
    fresh base, however many paths led to it (a diamond builds each task once).
    """
    pending_list = list(pending)
    blocking = set(pending_list) | busy
    return [t for t in pending_list if t not in busy and not (ancestors(t, graph) & blocking)]
