"""`task graph`: the structure of the Mermaid, DOT and JSON it draws."""

from __future__ import annotations

import re

from acrtask import graph
from acrtask.model import BaseImageTriggerType, DependencyType
from tests.support.tasks import dep, task

TASKS = [
    task("base-task", [dep("docker.io/library/alpine:3")], ("localhost:5000/baseimages/node:15-alpine",)),
    task("app-task", [dep("localhost:5000/baseimages/node:15-alpine"),
                      dep("localhost:5000/tools/builder:1", DependencyType.BUILD_TIME)],
         ("localhost:5000/app:latest", "localhost:5000/app:{{.Run.ID}}")),
    task("all-task", [dep("localhost:5000/tools/builder:1", DependencyType.BUILD_TIME)],
         trigger_type=BaseImageTriggerType.ALL),
]

NODE = re.compile(r'^    (\w+)(\["[^"]+"\]|\("[^"]+"\))$')
EDGE = re.compile(r"^    (\w+) (-->|-\.->)\|(\w+)\| (\w+)$")


def test_mermaid_is_a_well_formed_flowchart() -> None:
    lines = graph.to_mermaid(graph.build(TASKS)).splitlines()
    assert lines[0] == "flowchart LR"
    nodes, edges = {}, []
    for line in lines[1:]:
        if match := NODE.match(line):
            assert match.group(1) not in nodes, f"node defined twice: {line}"
            nodes[match.group(1)] = match.group(2)
        else:
            match = EDGE.match(line)
            assert match, f"not a node or an edge: {line!r}"
            edges.append(match.groups())
    for source, _, _, target in edges:
        assert source in nodes and target in nodes
    assert nodes["task_app_task"] == '["app-task"]'
    assert nodes["img_localhost_5000_baseimages_node_15_alpine"] == '("localhost:5000/baseimages/node:15-alpine")'
    assert ("task_base_task", "-->", "pushes", "img_localhost_5000_baseimages_node_15_alpine") in edges
    assert ("img_localhost_5000_baseimages_node_15_alpine", "-->", "RunTime", "task_app_task") in edges
    # A build-stage base under Runtime is drawn, dashed: it does not trigger. Under All it does.
    assert ("img_localhost_5000_tools_builder_1", "-.->", "BuildTime", "task_app_task") in edges
    assert ("img_localhost_5000_tools_builder_1", "-->", "BuildTime", "task_all_task") in edges


def test_dot_and_json() -> None:
    built = graph.build(TASKS)
    dot = graph.to_dot(built)
    assert dot.startswith("digraph acrtask {") and dot.endswith("}")
    assert '"base-task" -> "localhost:5000/baseimages/node:15-alpine" [label="pushes"];' in dot
    assert '"localhost:5000/tools/builder:1" -> "app-task" [label="BuildTime", style=dashed];' in dot
    data = graph.to_dict(built)
    assert data["tasks"] == ["all-task", "app-task", "base-task"]
    assert {"from": "localhost:5000/baseimages/node:15-alpine", "to": "app-task", "type": "RunTime",
            "triggers": True} in data["edges"]
