"""The task graph: which task pushes which image, and which images each task builds on. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from acrtask.model import Task
from acrtask.triggers import triggering_dependencies


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str  # pushes | RunTime | BuildTime


@dataclass(frozen=True)
class Graph:
    tasks: tuple[str, ...]
    images: tuple[str, ...]
    edges: tuple[Edge, ...]
    watched: frozenset[tuple[str, str]]  # (image, task) pairs whose change triggers the task


def build(tasks: Iterable[Task]) -> Graph:
    task_list = sorted(tasks, key=lambda t: t.name)
    images: set[str] = set()
    edges: list[Edge] = []
    watched: set[tuple[str, str]] = set()
    for task in task_list:
        for image in sorted(task.qualified_image_names):
            images.add(image)
            edges.append(Edge(task.name, image, "pushes"))
        triggering = {dep.name for dep in triggering_dependencies(task)}
        for dep in task.step.dependencies:
            images.add(dep.name)
            edges.append(Edge(dep.name, task.name, str(dep.type)))
            if dep.name in triggering:
                watched.add((dep.name, task.name))
    return Graph(tuple(t.name for t in task_list), tuple(sorted(images)), tuple(edges), frozenset(watched))


def _id(prefix: str, name: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)


def to_mermaid(graph: Graph) -> str:
    """A flowchart: tasks as boxes, images as rounded nodes; dashed edges do not trigger."""
    lines = ["flowchart LR"]
    for task in graph.tasks:
        lines.append(f'    {_id("task_", task)}["{task}"]')
    for image in graph.images:
        lines.append(f'    {_id("img_", image)}("{image}")')
    for edge in graph.edges:
        if edge.label == "pushes":
            lines.append(f"    {_id('task_', edge.source)} -->|pushes| {_id('img_', edge.target)}")
        else:
            arrow = "-->" if (edge.source, edge.target) in graph.watched else "-.->"
            lines.append(f"    {_id('img_', edge.source)} {arrow}|{edge.label}| {_id('task_', edge.target)}")
    return "\n".join(lines)


def to_dot(graph: Graph) -> str:
    lines = ["digraph acrtask {", "    rankdir=LR;"]
    for task in graph.tasks:
        lines.append(f'    "{task}" [shape=box];')
    for image in graph.images:
        lines.append(f'    "{image}" [shape=ellipse];')
    for edge in graph.edges:
        style = "" if edge.label == "pushes" or (edge.source, edge.target) in graph.watched else ", style=dashed"
        lines.append(f'    "{edge.source}" -> "{edge.target}" [label="{edge.label}"{style}];')
    lines.append("}")
    return "\n".join(lines)


def to_dict(graph: Graph) -> dict[str, Any]:
    return {
        "tasks": list(graph.tasks),
        "images": list(graph.images),
        "edges": [{"from": e.source, "to": e.target, "type": e.label,
                   "triggers": e.label != "pushes" and (e.source, e.target) in graph.watched} for e in graph.edges],
    }

