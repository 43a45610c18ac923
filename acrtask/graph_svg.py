"""The task graph as inline SVG, for the status page: no script, no web font, nothing fetched. Pure.

The same graph `acrtask task graph -o mermaid` draws, laid out here: images and tasks in columns from
left to right (a node's column is the longest path to it, after edges closing a cycle are set aside),
ordered in each column by where their predecessors sit. Tasks are square boxes, images rounded ones;
an edge that does not trigger (a pinned or build-time base the trigger type ignores) is dashed.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

from acrtask.graph import Graph

MAX_NODES = 200  # past this a picture is no help: the page says so and points at `task graph`
MAX_LABEL = 44
CHAR_WIDTH = 7.0  # of the 12px sans-serif labels, roughly: boxes are sized from it
NODE_HEIGHT = 26
ROW = 40
GAP = 70
PAD = 12

Node = tuple[str, str]  # ("task" | "image", name)


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def _edges(graph: Graph) -> list[tuple[Node, Node, bool]]:
    """(from, to, triggers) in the graph's order."""
    out = []
    for edge in graph.edges:
        if edge.label == "pushes":
            out.append((("task", edge.source), ("image", edge.target), True))
        else:
            out.append((("image", edge.source), ("task", edge.target), (edge.source, edge.target) in graph.watched))
    return out


def _acyclic(nodes: list[Node], edges: list[tuple[Node, Node, bool]]) -> list[tuple[Node, Node]]:
    """The edges without those that close a cycle (found by an iterative depth-first search)."""
    following: dict[Node, list[Node]] = defaultdict(list)
    for source, target, _ in edges:
        following[source].append(target)
    state: dict[Node, int] = {}  # 1: on the path, 2: done
    back: set[tuple[Node, Node]] = set()
    for root in nodes:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(following[root]))]
        while stack:
            node, rest = stack[-1]
            nxt = next(rest, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(following[nxt])))
    return [(s, t) for s, t, _ in edges if (s, t) not in back]


def layout(graph: Graph) -> dict[Node, tuple[int, int]]:
    """Each node's (column, row)."""
    nodes: list[Node] = [("image", i) for i in graph.images] + [("task", t) for t in graph.tasks]
    edges = _edges(graph)
    forward = _acyclic(nodes, edges)
    preceding: dict[Node, list[Node]] = defaultdict(list)
    following: dict[Node, list[Node]] = defaultdict(list)
    for source, target in forward:
        preceding[target].append(source)
        following[source].append(target)
    column: dict[Node, int] = {}
    waiting = {node: len(set(preceding[node])) for node in nodes}
    ready = [node for node in nodes if waiting[node] == 0]
    while ready:  # Kahn's order: a node's column is one past its furthest predecessor
        node = ready.pop()
        column[node] = max((column[p] + 1 for p in preceding[node]), default=0)
        for nxt in set(following[node]):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    columns: dict[int, list[Node]] = defaultdict(list)
    for node in nodes:
        columns[column.get(node, 0)].append(node)
    place: dict[Node, tuple[int, int]] = {}
    for index in sorted(columns):
        def weight(node: Node) -> tuple[float, str]:
            rows = [place[p][1] for p in preceding[node] if p in place]
            return (sum(rows) / len(rows) if rows else 0.0, node[1])
        for row, node in enumerate(sorted(columns[index], key=weight)):
            place[node] = (index, row)
    return place


def to_svg(graph: Graph) -> str | None:
    """The graph as an <svg> element; None when it has more than MAX_NODES nodes."""
    place = layout(graph)
    if not place or len(place) > MAX_NODES:
        return None
    widths: dict[int, float] = defaultdict(float)
    for (_, name), (col, _) in place.items():
        widths[col] = max(widths[col], len(_label(name)) * CHAR_WIDTH + 2 * PAD)
    lefts, x = {}, float(PAD)
    for col in sorted(widths):
        lefts[col] = x
        x += widths[col] + GAP
    width = x - GAP + PAD
    height = (max(row for _, row in place.values()) + 1) * ROW + PAD

    def box(node: Node) -> tuple[float, float, float]:
        col, row = place[node]
        return lefts[col], PAD + row * ROW, len(_label(node[1])) * CHAR_WIDTH + 2 * PAD

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="Task graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>']
    for source, target, triggering in _edges(graph):
        sx, sy, sw = box(source)
        tx, ty, _ = box(target)
        x1, y1, x2, y2 = sx + sw, sy + NODE_HEIGHT / 2, tx, ty + NODE_HEIGHT / 2
        bend = max(30.0, abs(x2 - x1) / 2)
        dash = "" if triggering else ' stroke-dasharray="5,4"'
        kind = "pushes" if source[0] == "task" else ("triggers" if triggering else "does not trigger")
        parts.append(f'<path d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
                     f'{x2:.1f},{y2:.1f}" fill="none" stroke="#555" stroke-width="1.2"{dash} '
                     f'marker-end="url(#arrow)"><title>{escape(source[1])} {kind} {escape(target[1])}</title></path>')
    for node in place:
        left, top, w = box(node)
        rounded = 13 if node[0] == "image" else 3
        fill = "#eef4fb" if node[0] == "image" else "#fff7e6"
        parts.append(f'<g class="{node[0]}"><title>{escape(node[0])}: {escape(node[1])}</title>'
                     f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{NODE_HEIGHT}" rx="{rounded}" '
                     f'fill="{fill}" stroke="#777"/>'
                     f'<text x="{left + w / 2:.1f}" y="{top + NODE_HEIGHT / 2 + 4:.1f}" text-anchor="middle" '
                     f'font-size="12" font-family="sans-serif">{escape(_label(node[1]))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
