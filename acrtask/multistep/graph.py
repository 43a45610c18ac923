"""The order of a task file's steps, from their `when`. Pure.

ACR's rules: `when: ["-"]` starts a step at once (in parallel with others); `when: [a, b]` starts it
after steps a and b; no `when` starts it after the step above it. ACR only lets `when` name steps
above; acrtask also takes steps below, so a cycle is possible, and is refused naming its steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from acrtask.multistep.errors import TaskFileError
from acrtask.multistep.spec import IMMEDIATE


@dataclass(frozen=True)
class Node:
    id: str
    when: tuple[str, ...] | None
    line: int | None = None


def prerequisites(nodes: Sequence[Node]) -> dict[str, tuple[str, ...]]:
    """step id -> the ids it waits for, in file order; refuses unknown ids, self-references and cycles."""
    ids = {node.id for node in nodes}
    needs: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for node in nodes:
        if node.when is None:
            needs[node.id] = (previous,) if previous else ()
        elif node.when == (IMMEDIATE,):
            needs[node.id] = ()
        else:
            if IMMEDIATE in node.when:
                raise TaskFileError(f"Step '{node.id}': when: [\"-\"] cannot be combined with step ids.",
                                    "Use [\"-\"] to start at once, or list the steps to wait for.", node.line)
            for other in node.when:
                if other == node.id:
                    raise TaskFileError(f"Step '{node.id}' waits for itself in its when.",
                                        "Remove its own id from when.", node.line)
                if other not in ids:
                    raise TaskFileError(f"Step '{node.id}' waits for step '{other}', which does not exist.",
                                        "Name steps by their id: " + ", ".join(sorted(ids)) + ".", node.line)
            needs[node.id] = tuple(dict.fromkeys(node.when))
        previous = node.id
    cycle = find_cycle(needs)
    if cycle:
        line = next((n.line for n in nodes if n.id == cycle[0]), None)
        raise TaskFileError("The steps' when makes a cycle: " + " -> ".join(cycle) + ", so none of them could "
                            "ever start.", "Break the cycle: one of these steps must not wait for the others.",
                            line)
    return needs


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle as [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for upstream in needs.get(node, ()):
            if state.get(upstream) == 1:
                return path[path.index(upstream):] + [upstream]
            if upstream not in state:
                found = visit(upstream)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in needs:
        if node not in state:
            found = visit(node)
            if found:
                return list(reversed(found))
    return []


def is_sequential(order: Sequence[str], needs: Mapping[str, Sequence[str]]) -> bool:
    """True when every step waits for exactly the one above it: no two steps can ever run at once."""
    return all(tuple(needs[step]) == ((order[i - 1],) if i else ()) for i, step in enumerate(order))
